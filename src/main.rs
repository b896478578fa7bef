use std::process::ExitCode;

fn main() -> ExitCode {
    match daemonization::cli::run(std::env::args_os()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ERROR: {e:#}");
            ExitCode::from(daemonization::report::exit::FAILED)
        }
    }
}
