;;;; The daemonization bootstrap: the program the Lisp loads (through an
;;;; inherited file descriptor, never argv) to run a daemon's code.
;;;;
;;;; The tool prepends the parameters below as DEFPARAMETER forms; the user's
;;;; functions arrive as their verbatim source text and are read here, in
;;;; CL-USER with *READ-EVAL* true, exactly as the original library read them.
;;;;
;;;; Parameters:
;;;;   *NAME*            daemon name for messages, or NIL
;;;;   *MODE*            :DAEMON (stay alive until stopped), :FOREGROUND
;;;;                     (nodaemon: REPL on a terminal, else wait), or
;;;;                     :CALL (call *MAIN-FUNCTION* with *ARGS* and exit)
;;;;   *READY-FD*        fd of the readiness pipe, or NIL
;;;;   *CLOSE-FDS*       fds to mark close-on-exec (pid-file lock, ...)
;;;;   *REQUIRED-MODULES*       modules to REQUIRE first, because the code names them
;;;;   *BEFORE-INIT-FN*  source text of :before-init-fn, or NIL
;;;;   *MAIN-FUNCTION*   source text of :main-function, or NIL
;;;;   *ARGS*            arguments for :CALL mode
;;;;   *LOG-INFO*        where info lines go: :SYSLOG, a file name, or NIL
;;;;   *LOG-ERROR*       where error lines go, likewise
;;;;   *FASL-DIR*        ASDF's output cache (:fasl-dir), or NIL

;;; The bootstrap's own functions are interpreted, not compiled: running the
;;; native compiler on them costs about 12 MB of resident memory and most of
;;; the start-up time. The user's code is read and compiled in the evaluator
;;; mode the user had (see RUN).
(defparameter *user-evaluator-mode* sb-ext:*evaluator-mode*)
(setq sb-ext:*evaluator-mode* :interpret)

(defun ready-stream ()
  (and *ready-fd*
       (or (get '*ready-fd* 'stream)
           (setf (get '*ready-fd* 'stream)
                 (sb-sys:make-fd-stream *ready-fd* :output t :buffering :full
                                                   :external-format :utf-8)))))

(defun report (kind &optional text)
  "Tells the starting process KIND (ready or error), then closes the pipe.
Errors are ignored: the starter may be gone (killed while waiting)."
  (let ((stream (ready-stream)))
    (when stream
      (ignore-errors
       (write-line kind stream)
       (when text (write-string text stream))
       (finish-output stream))
      (ignore-errors (close stream))
      (setf *ready-fd* nil))))

(defun set-cloexec (fd)
  ;; fcntl (fd, F_SETFD, FD_CLOEXEC): the Lisp's own children must not
  ;; inherit the pid-file lock or the readiness pipe.
  (sb-alien:alien-funcall
   (sb-alien:extern-alien "fcntl" (function sb-alien:int sb-alien:int sb-alien:int sb-alien:int))
   fd 2 1))

(defun message (control &rest args)
  (ignore-errors
   (format *error-output* "~&~?~%" control args)
   (finish-output *error-output*)))

(defun syslog-line (priority line)
  ;; openlog keeps the ident pointer: it is allocated once and never freed.
  (unless (get '*log-info* 'openlog)
    (sb-alien:alien-funcall
     (sb-alien:extern-alien "openlog" (function sb-alien:void (* sb-alien:char) sb-alien:int sb-alien:int))
     (sb-alien:make-alien-string "daemonization") 1 24) ; LOG_PID, LOG_DAEMON
    (setf (get '*log-info* 'openlog) t))
  (sb-alien:alien-funcall
   (sb-alien:extern-alien "syslog" (function sb-alien:void sb-alien:int sb-alien:c-string sb-alien:c-string))
   (logior 24 priority) "%s" line))

(defun log-line (level text)
  "Logs TEXT at LEVEL (:INFO or :ERROR) in the original's plist shape.
Logging never fails the daemon."
  (let ((destination (if (eq level :error) *log-error* *log-info*)))
    (when destination
      (ignore-errors
       (let ((line (with-standard-io-syntax
                     (let ((*print-readably* nil))
                       (format nil "(:DAEMONIZATION ~s ~s :PID ~d :NAME ~s :TYPE-PROC :CHILD)"
                               level (one-line text) (sb-unix:unix-getpid) *name*)))))
         (if (eq destination :syslog)
             (syslog-line (if (eq level :error) 3 6) line)
             (with-open-file (log destination :direction :output :if-exists :append
                                              :if-does-not-exist :create :external-format :utf-8)
               (write-line line log))))))))

(defun one-line (text)
  "TEXT on one line: newlines become \" // \"."
  (with-output-to-string (out)
    (loop for c across text
          do (if (char= c #\Newline) (write-string " // " out) (write-char c out)))))

(defun condition-text (condition)
  (or (ignore-errors
       (let ((*print-readably* nil) (*print-length* 20) (*print-level* 5))
         (princ-to-string condition)))
      "(unprintable condition)"))

(defun frame-text (line)
  "A backtrace line without its frame number."
  (let ((colon (search ": " line)))
    (if colon (subseq line (+ colon 2)) line)))

(defun frame-starts-with (prefix line)
  (eql 0 (search prefix (frame-text line))))

(defun bootstrap-frame-p (line)
  (some (lambda (prefix) (frame-starts-with prefix line))
        '("(SB-EVAL::" "(SB-EVAL:" "(DAEMONIZATION-BOOTSTRAP::")))

(defun backtrace-text (count)
  "The frames between the signalling of the condition and the bootstrap's
own (interpreted) frames, at most COUNT of them."
  (let* ((text (or (ignore-errors
                    (with-output-to-string (s)
                      (let ((*print-readably* nil) (*print-pretty* nil)
                            (*print-length* 10) (*print-level* 3))
                        (sb-debug:print-backtrace :count 200 :stream s))))
                   ""))
         (lines (with-input-from-string (s text)
                  (loop for line = (read-line s nil) while line collect line)))
         (signal (position-if (lambda (l) (or (frame-starts-with "(SB-KERNEL::%SIGNAL " l)
                                              (frame-starts-with "(INVOKE-DEBUGGER " l)))
                              lines :from-end t))
         (lines (if signal
                    (nthcdr (1+ signal) lines)
                    (member-if-not #'bootstrap-frame-p (rest lines))))
         (ours (position-if #'bootstrap-frame-p lines)))
    (format nil "~{  ~a~%~}" (subseq lines 0 (min count (or ours (length lines)))))))

(defun failure-text (condition where)
  "The report of CONDITION, signalled in WHERE (a string)."
  (format nil "~a~%(a condition of type ~s, signalled by ~a)~%Backtrace:~%~a"
          (condition-text condition) (type-of condition) where (backtrace-text 15)))

(defun stop-now (signal)
  (let ((text (format nil "Stop ~@[~a ~]daemon" *name*)))
    (message "~a (signal ~d)" text signal)
    (log-line :info text))
  (sb-ext:exit :code 0 :abort nil :timeout 5))

(defun stop (signal info context)
  "The SIGUSR1/SIGTERM handler. The kernel may deliver the signal to any
thread (a swank listener, say); the exit is always done by the main
thread, which unwinds and runs the exit hooks."
  (declare (ignore info context))
  (if (sb-thread:main-thread-p)
      (stop-now signal)
      (sb-thread:interrupt-thread (sb-thread:main-thread) (lambda () (stop-now signal)))))

(defun die-on-unhandled-error (condition hook)
  (declare (ignore hook))
  (let ((text (format nil "Unhandled error in ~@[~a ~]daemon: ~a" *name*
                      (failure-text condition
                                    (if (sb-thread:main-thread-p)
                                        "the main thread"
                                        (format nil "the thread ~s"
                                                (or (sb-thread:thread-name sb-thread:*current-thread*)
                                                    "(unnamed)")))))))
    (message "~a" text)
    (log-line :error text))
  (report "error" (failure-text condition "the daemon"))
  (sb-ext:exit :code 70 :abort t))

(defparameter *module-packages*
  '(("ASDF" . "ASDF") ("UIOP" . "ASDF")
    ("SB-POSIX" . "SB-POSIX") ("SB-INTROSPECT" . "SB-INTROSPECT")
    ("SB-BSD-SOCKETS" . "SB-BSD-SOCKETS") ("SB-CLTL2" . "SB-CLTL2")
    ("SB-CONCURRENCY" . "SB-CONCURRENCY") ("SB-ROTATE-BYTE" . "SB-ROTATE-BYTE")
    ("SB-MD5" . "SB-MD5") ("SB-SPROF" . "SB-SPROF") ("SB-UNIX" . nil))
  "Packages whose module is loaded on demand when the user's code names them.")

(defun read-user-form (text)
  "Reads TEXT as the original did; a package of a known module that is not
loaded yet (ASDF, SB-POSIX, ...) is loaded, and the text read again."
  (let ((tried '()))
    (loop
      (handler-case
          (return
            (with-standard-io-syntax
              (let ((*package* (find-package "COMMON-LISP-USER"))
                    (*read-eval* t))
                (read-from-string text))))
        (package-error (c)
          (let* ((name (ignore-errors (string (package-error-package c))))
                 (module (cdr (assoc name *module-packages* :test #'equal))))
            (if (and module (not (member module tried :test #'equal)))
                (progn (push module tried) (require module))
                (error c))))))))

(defun user-function (text)
  (when text
    (let ((form (read-user-form text)))
      (cond ((functionp form) form)
            ((and form (symbolp form))
             (lambda (&rest args) (apply (fdefinition form) args)))
            ((consp form) (eval form))
            (t (error "~s is not a function" form))))))

(defun call-user (key text &rest args)
  (handler-bind ((serious-condition
                   (lambda (c)
                     (let ((text (failure-text c (format nil "~(~s~)" key))))
                       (message "ERROR: ~a" text)
                       (log-line :error text)
                       (report "error" text)
                       (sb-ext:exit :code 1 :abort t)))))
    (let ((fn (user-function text)))
      (when fn (apply fn args)))))

(defun wait-until-stopped ()
  (loop (sleep 3600)))

(defun run ()
  (dolist (fd (if *ready-fd* (cons *ready-fd* *close-fds*) *close-fds*))
    (set-cloexec fd))
  (sb-sys:enable-interrupt sb-unix:sigusr1 #'stop)
  (sb-sys:enable-interrupt sb-unix:sigterm #'stop)
  (unless (and (eq *mode* :foreground) (interactive-stream-p *standard-input*))
    (sb-sys:enable-interrupt sb-unix:sigint #'stop))
  (setf sb-ext:*invoke-debugger-hook* #'die-on-unhandled-error
        *debugger-hook* #'die-on-unhandled-error)
  (setq sb-ext:*evaluator-mode* *user-evaluator-mode*)
  (dolist (module *required-modules*) (require module))
  (when *fasl-dir*
    (funcall (intern "INITIALIZE-OUTPUT-TRANSLATIONS" "ASDF")
             `(:output-translations (t (,*fasl-dir* :implementation :**/ :*.*.*))
                                    :ignore-inherited-configuration)))
  (in-package "COMMON-LISP-USER")
  (ecase *mode*
    (:call
     (apply #'call-user :before-parent-exit-fn *main-function* *args*)
     (sb-ext:exit :code 0))
    (:daemon
     (call-user :before-init-fn *before-init-fn*)
     (call-user :main-function *main-function*)
     (report "ready")
     (wait-until-stopped))
    (:foreground
     (call-user :before-init-fn *before-init-fn*)
     (call-user :main-function *main-function*)
     (report "ready")
     (if (interactive-stream-p *standard-input*)
         (progn (setf *debugger-hook* nil)
                (sb-ext:enable-debugger)
                (sb-impl::toplevel-repl nil))
         (wait-until-stopped)))))

(run)
