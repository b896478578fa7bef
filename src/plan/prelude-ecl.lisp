;;;; The ECL prelude of the bootstrap: what the portable part needs.

(defparameter *utf-8* :utf-8
  "The UTF-8 external format, as this Lisp names it.")

(defun %user-evaluation ())

(defun %save-core (path)
  (declare (ignore path))
  (error "ECL cannot save its image: it has no saved cores"))

(defun %directory-pathname (namestring)
  (pathname namestring))

(defun %getpid () (ext:getpid))

(defun %directory-truename (dir)
  (let ((true (ignore-errors (probe-file dir))))
    (and true (null (pathname-name true)) true)))

(defun %native-namestring (path) (namestring path))

(defun %collect-garbage ()
  ;; Only SBCL settles before it is ready: ECL's collector neither moves
  ;; objects nor gives memory back.
  nil)

(defun %exit (code abort)
  "Exits with CODE: QUIT unwinds (from the main thread); an abort, from any
thread, ends the process at once (QUIT from another thread ends only it)."
  (if abort
      (si:exit code)
      (ext:quit code)))

(defun %open-ready-stream (fd)
  ;; On the descriptor itself: reopening /dev/fd/N is refused once the
  ;; daemon runs as its :user (the pipe is root's).
  (ext:make-stream-from-fd fd :output :element-type 'character :external-format :utf-8))

(defun %set-cloexec (fd)
  ;; ECL's interpreter cannot call fcntl without the C compiler: the
  ;; descriptors stay inheritable by the Lisp's own children (see README).
  (declare (ignore fd)))

(defun %install-stop-handlers (stop with-sigint)
  (ext:set-signal-handler ext:+sigusr1+ (lambda () (funcall stop 10)))
  (ext:set-signal-handler ext:+sigterm+ (lambda () (funcall stop 15)))
  (when with-sigint
    (ext:set-signal-handler ext:+sigint+ (lambda () (funcall stop 2)))))

(defun %wait-for-stop (stop)
  "Sleeps until a stop signal's handler ends the Lisp."
  (declare (ignore stop))
  (loop (sleep 3600)))

(defun %install-reload-handler (reload)
  ;; No siginfo here: the verdict carries 0, not the number reload sent.
  (ext:set-signal-handler ext:+sighup+ (lambda () (funcall reload 0))))

(defun %drain (fd)
  ;; Without fcntl here: a verdict nobody reads stays in the pipe.
  (declare (ignore fd)))

(defun %install-debugger-hook (hook)
  ;; EXT:*INVOKE-DEBUGGER-HOOK* is global: it covers every thread.
  (setf ext:*invoke-debugger-hook* hook
        *debugger-hook* hook))

(defun %thread-description ()
  (format nil "the thread ~s" (mp:process-name mp:*current-process*)))

(defun %syslog (priority line)
  (declare (ignore priority line))
  (error "syslog is not available from ECL's interpreter"))

(defun %backtrace-lines ()
  (let ((text (with-output-to-string (*standard-output*)
                (ignore-errors (si::tpl-backtrace)))))
    (text-lines text)))

(defparameter *module-packages*
  '(("ASDF" . "asdf") ("UIOP" . "asdf"))
  "Packages whose module is loaded on demand when the user's code names them.")

(defun %require (module) (require (string-downcase module)))

(defun %repl ()
  (setf *debugger-hook* nil)
  (si::top-level))
