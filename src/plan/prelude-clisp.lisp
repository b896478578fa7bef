;;;; The GNU CLISP prelude of the bootstrap: what the portable part needs.
;;;; CLISP cannot catch SIGUSR1 from Lisp: it stops gracefully on SIGTERM
;;;; (running its exit hooks), so its stop schedule starts with TERM.

(defparameter *utf-8* charset:utf-8
  "The UTF-8 external format, as this Lisp names it.")

(defun %user-evaluation ())

(defun %save-core (path)
  (rename-package (find-package "DAEMONIZATION-BOOTSTRAP") "DAEMONIZATION-BOOTSTRAP-OF-A-BUILD")
  (ext:saveinitmem path :quiet t :verbose nil)
  (ext:exit 0))

(defun %directory-pathname (namestring)
  (pathname namestring))

(defun %getpid () (os:process-id))

(defun %directory-truename (dir)
  ;; PROBE-FILE refuses a directory here.
  (ignore-errors (and (ext:probe-directory dir) (truename dir))))

(defun %native-namestring (path) (namestring path))

(defun %collect-garbage ()
  ;; Only SBCL settles before it is ready: CLISP's heap stays small.
  nil)

(defun %exit (code abort)
  (if abort
      (ext:exit code)
      (ext:quit code)))

(defun %open-ready-stream (fd)
  (ext:make-stream fd :direction :output :external-format charset:utf-8))

(defun %set-cloexec (fd)
  ;; CLISP has no portable fcntl here: the descriptors stay inheritable by
  ;; the Lisp's own children (see README).
  (declare (ignore fd)))

(defun %wait-for-stop (stop)
  "Sleeps until a stop signal's handler ends the Lisp."
  (declare (ignore stop))
  (loop (sleep 3600)))

(defun %install-reload-handler (reload)
  ;; This Lisp cannot catch SIGHUP: the tool refuses :reload-function for it.
  (declare (ignore reload)))

(defun %drain (fd)
  (declare (ignore fd)))

(defun %install-stop-handlers (stop with-sigint)
  ;; SIGTERM ends CLISP gracefully by itself (exit hooks run); the stop is
  ;; announced from its exit hook, unless the bootstrap itself is exiting.
  (declare (ignore stop with-sigint))
  (push (lambda ()
          (unless *exit-reason*
            (setf *exit-reason* :stop)   ; once: the hook may run again
            (ignore-errors (announce-stop 15))))
        custom:*fini-hooks*))

(defun %install-debugger-hook (hook)
  (setf *debugger-hook* hook))

(defun %thread-description () "the main thread")

(defun %syslog (priority line)
  (declare (ignore priority line))
  (error "syslog is not available from CLISP"))

(defun %backtrace-lines ()
  (let ((text (with-output-to-string (s)
                (ignore-errors (system::print-backtrace :out s :limit 30)))))
    (text-lines text)))

(defparameter *module-packages*
  '(("ASDF" . "asdf") ("UIOP" . "asdf"))
  "Packages whose module is loaded on demand when the user's code names them.")

(defun %require (module) (require (string-downcase module)))

(defun %repl ()
  (setf *debugger-hook* nil)
  (system::main-loop))
