;;;; The Clozure CL prelude of the bootstrap, written from CCL's manual.
;;;; UNTESTED here (Debian ships no CCL); see the README's runner table.
;;;; CCL quits on SIGTERM, running its cleanup functions; SIGUSR1 is not
;;;; caught, so its stop schedule starts with TERM.

(defparameter *utf-8* :utf-8
  "The UTF-8 external format, as this Lisp names it.")

(defun %save-core (path)
  (rename-package (find-package "DAEMONIZATION-BOOTSTRAP") "DAEMONIZATION-BOOTSTRAP-OF-A-BUILD")
  (ccl:save-application path))

(defun %directory-pathname (namestring)
  (ccl::native-to-directory-pathname namestring))

(defun %getpid () (ccl::getpid))

(defun %native-namestring (path) (ccl:native-translated-namestring path))

(defun %exit (code abort)
  (declare (ignore abort))
  (ccl:quit code))

(defun %open-ready-stream (fd)
  (open (format nil "/dev/fd/~d" fd) :direction :output :if-exists :append
                                     :external-format :utf-8))

(defun %install-reload-handler (reload)
  ;; This Lisp cannot catch SIGHUP: the tool refuses :reload-function for it.
  (declare (ignore reload)))

(defun %install-stop-handlers (stop with-sigint)
  (declare (ignore stop with-sigint))
  (push (lambda ()
          (unless *exit-reason*
            (setf *exit-reason* :stop)
            (ignore-errors (announce-stop 15))))
        ccl:*lisp-cleanup-functions*))

(defun %thread-description ()
  (format nil "the thread ~s" (ccl:process-name ccl:*current-process*)))

(defun %syslog (priority line)
  (declare (ignore priority line))
  (error "syslog is not available from CCL here"))

(defun %backtrace-lines ()
  (let ((text (with-output-to-string (s)
                (ignore-errors (ccl:print-call-history :stream s :detailed-p nil)))))
    (text-lines text)))

(defun %repl ()
  (setf *debugger-hook* nil)
  (ccl:toplevel-loop))
