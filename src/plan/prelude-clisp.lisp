;;;; The GNU CLISP prelude of the bootstrap: what CLISP does its own way
;;;; (the shared defaults, prelude-common.lisp, give the rest).
;;;; CLISP cannot catch SIGUSR1 from Lisp: it stops gracefully on SIGTERM
;;;; (running its exit hooks), so its stop schedule starts with TERM.

(defparameter *utf-8* charset:utf-8
  "The UTF-8 external format, as this Lisp names it.")

(defun %save-core (path)
  (rename-package (find-package "DAEMONIZATION-BOOTSTRAP") "DAEMONIZATION-BOOTSTRAP-OF-A-BUILD")
  (ext:saveinitmem path :quiet t :verbose nil)
  (ext:exit 0))

(defun %getpid () (os:process-id))

(defun %directory-truename (dir)
  ;; PROBE-FILE refuses a directory here.
  (ignore-errors (and (ext:probe-directory dir) (truename dir))))

(defun %exit (code abort)
  (if abort
      (ext:exit code)
      (ext:quit code)))

(defun %open-ready-stream (fd)
  (ext:make-stream fd :direction :output :external-format charset:utf-8))

(defun %close-ready-fd (fd)
  "MAKE-STREAM duplicated FD: closing the stream left FD open, and `status`
sees a daemon that holds it as not ready yet."
  (funcall (compile nil `(lambda ()
                           (ffi:def-call-out c-close (:name "close")
                             (:arguments (fd ffi:int)) (:return-type ffi:int)
                             (:library :default))
                           (c-close ,fd)))))

(defun %install-reload-handler (reload)
  ;; This Lisp cannot catch SIGHUP: the tool refuses :reload-function for it.
  (declare (ignore reload)))

(defun %install-stop-handlers (stop with-sigint)
  ;; SIGTERM ends CLISP gracefully by itself (exit hooks run); the stop is
  ;; announced from its exit hook, unless the bootstrap itself is exiting.
  (declare (ignore stop with-sigint))
  (push (lambda ()
          (unless *exit-reason*
            (setf *exit-reason* :stop)   ; once: the hook may run again
            (ignore-errors (announce-stop 15))))
        custom:*fini-hooks*))

(defun %syslog (priority line)
  (declare (ignore priority line))
  (error "syslog is not available from CLISP"))

(defun %backtrace-lines ()
  (let ((text (with-output-to-string (s)
                (ignore-errors (system::print-backtrace :out s :limit 30)))))
    (text-lines text)))

(defun %repl ()
  (setf *debugger-hook* nil)
  (system::main-loop))
