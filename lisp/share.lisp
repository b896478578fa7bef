;;;; DAEMON-SHARE and DAEMONIZATION-UTILS: what users of the original read
;;;; of its inner packages, with the original's values.

(in-package "DAEMON-SHARE")

;;; The status codes of :internal-result (sysexits.h's, and the
;;; original's own above 255).
(defconstant +ex-ok+ 0 "success; status: running")
(defconstant +ex-general+ 1 "a general error")
(defconstant +ex-software+ 70 "an internal error; a start that failed")
(defconstant +ex-unavailable+ 69 "status: a stale pid file (service-unavailable)")
(defconstant +ex-cantcreate+ 73 "the pid file could not be created")
(defconstant +pid-file-not-found+ 256 "no pid file")
(defconstant +pid-file-exists+ 257 "the pid file exists")
(defconstant +process-not-exists+ 258 "stop: the pid file names no running daemon")

(in-package "DAEMONIZATION-UTILS")

(defun get-args ()
  "This Lisp's command line, the program first."
  (uiop:raw-command-line-arguments))

(defun get-proc-id ()
  "This Lisp's process id."
  #+sbcl (sb-unix:unix-getpid)
  #+ecl (ext:getpid)
  #+clisp (os:process-id)
  #+ccl (ccl::getpid)
  #-(or sbcl ecl clisp ccl)
  (parse-integer (car (last (pathname-directory (truename "/proc/self/"))))))

(defun recreate-file-allow-write-other (file)
  "Creates FILE, when missing, writable by everyone (mode 0666, whatever
the umask), as the original did; an existing file (or any other name:
a symbolic link is never followed) is left as it is. Returns 0.
The file is created new (O_CREAT|O_EXCL, by sh's noclobber) with that
mode, never changed by name afterwards: in a directory another user can
write, nothing they put there gets the mode."
  (let ((native (uiop:native-namestring
                 (merge-pathnames (uiop:ensure-pathname file :want-non-wild t)))))
    (uiop:run-program (list "/bin/sh" "-c"
                            "[ -e \"$1\" ] || [ -h \"$1\" ] || { umask 0; set -C; : > \"$1\"; }"
                            "sh" native)
                      :input nil :output nil :error-output nil :ignore-error-status t)
    0))
