;;;; The daemonization bootstrap: the program the Lisp loads (through an
;;;; inherited file descriptor, never argv) to run a daemon's code.
;;;;
;;;; This is the portable part; what differs between Lisps (exit, signals,
;;;; backtraces, syslog, the REPL, ...) is in the runner's prelude,
;;;; prelude-<lisp>.lisp, loaded before it: the functions named %...
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
;;;;   *READY-FD*        fd of the readiness pipe, or NIL; REPORT writes the
;;;;                     words "ready" or "error" there (the protocol is
;;;;                     src/daemon/readiness.rs, which a test checks this
;;;;                     file against)
;;;;   *CLOSE-FDS*       fds to mark close-on-exec (pid-file lock, ...)
;;;;   *REQUIRED-MODULES*       modules to REQUIRE first, because the code names them
;;;;   *BEFORE-INIT-FN*  source text of :before-init-fn, or NIL
;;;;   *MAIN-FUNCTION*   source text of :main-function, or NIL
;;;;   *ARGS*            arguments for :CALL mode
;;;;   *LOG-INFO*        where info lines go: :SYSLOG, a file name, or NIL
;;;;   *LOG-ERROR*       where error lines go, likewise
;;;;   *FASL-DIR*        ASDF's output cache (:fasl-dir), or NIL
;;;;   *RELOAD-FUNCTION* source text of :reload-function, or NIL: called on
;;;;                     SIGHUP (`reload`)
;;;;   *RELOAD-FD*       fd of the reload pipe, or NIL: each reload's verdict
;;;;                     is written there, "reloaded TAG", or "error TAG",
;;;;                     the report and a line "end-of-report" (TAG: the
;;;;                     number the SIGHUP carried, 0 if none); the read end is
;;;;                     fd *RELOAD-FD* + 1 (src/daemon/reload.rs reads it)
;;;;   *PRELOAD*         what to load before the conf's functions: a list of
;;;;                     (:system "name"), (:file "path") and (:code "text")
;;;;   *FROM-CORE*       true when the image is a core saved with *PRELOAD*
;;;;                     loaded: then it is not loaded again
;;;;   *CORE-FILE*       :BUILD-CORE mode: where to save the image
;;;;   *LISTENERS*       :listen's sockets this Lisp got: (NAME FD FAMILY) each,
;;;;                     FAMILY :INET or :INET6 (also in LISTEN_FDS, for code
;;;;                     written for systemd's socket activation)
;;;;   *CONF-STOP-FUNCTION* source text of :stop-function, or NIL: called
;;;;                     when the daemon is stopped, before it exits
;;;;   *CAUSE-FD*        fd of the cause pipe (a supervised daemon), or NIL:
;;;;                     the last word before an exit on an error
;;;;                     (src/wire/cause.rs)
;;;;   *READY-MODE*      :RETURNED (ready once :main-function returned),
;;;;                     :NOTIFY or :PORT (ready when the daemon says so, or
;;;;                     its port answers: the tool probes it)
;;;;   *CONTROL-DIR*     the control socket's directory (made by the tool,
;;;;                     the daemon's user's, 0700), or NIL: control.lisp,
;;;;                     read before this file when it is not NIL
;;;;   *WATCHDOG-CHECK*  source text of :watchdog-check, or NIL
;;;;   *MESSAGES*        whether the daemon's stop and error lines go to its
;;;;                     stderr too (not under systemd when they are logged
;;;;                     to syslog: the journal would get each twice)
;;;;   *OUTPUT-FILE*     the :output file, when this Lisp writes it itself (a
;;;;                     daemon without a supervisor), or NIL: its standard
;;;;                     streams write whole lines or drop them (a full disk)
;;;;   *DIRECTORY*       the directory the command was run from, or NIL: the
;;;;                     *DEFAULT-PATHNAME-DEFAULTS* the conf's code sees
;;;;                     (the original's daemon, a fork of the caller's
;;;;                     Lisp, kept the caller's), though the daemon's
;;;;                     working directory is /

(defun ready-stream ()
  (and *ready-fd*
       (or (get '*ready-fd* 'stream)
           (setf (get '*ready-fd* 'stream) (%open-ready-stream *ready-fd*)))))

(defun report (kind &optional text)
  "Tells the starting process KIND (ready or error), then closes the pipe.
Errors are ignored: the starter may be gone (killed while waiting)."
  (let ((stream (ready-stream)))
    (when stream
      (let ((written (ignore-errors
                      (write-line kind stream)
                      (when text (write-string text stream))
                      (finish-output stream)
                      t)))
        ;; Unwritten output is dropped, so the descriptor is closed anyway.
        (ignore-errors (close stream :abort (not written)))
        (ignore-errors (%close-ready-fd *ready-fd*)))
      (setf *ready-fd* nil))))

(defun message (control &rest args)
  "Writes a line to *ERROR-OUTPUT*, but not when *MESSAGES* is false (under
systemd with syslog logging, where the log line reaches the journal once)."
  (when *messages*
    (message-always control args)))

(defun message-always (control args)
  "The line, on a line of its own (SBCL's line keeper: not in the middle of
one its thread was writing when a stop interrupted it)."
  (ignore-errors
   (%call-on-own-line
    (lambda ()
      (format *error-output* "~&~?~%" control args)
      (finish-output *error-output*)))))

(defun log-line (level text)
  "Logs TEXT at LEVEL (:INFO or :ERROR) in the original's plist shape.
Logging never fails the daemon."
  (let ((destination (if (eq level :error) *log-error* *log-info*)))
    (when destination
      (ignore-errors
       (let ((line (with-standard-io-syntax
                     (let ((*print-readably* nil))
                       (format nil "(:DAEMONIZATION ~s ~s :PID ~d :NAME ~s :TYPE-PROC :CHILD)"
                               level (one-line text) (%getpid) *name*)))))
         (if (eq destination :syslog)
             (%syslog (if (eq level :error) 3 6) line)
             (with-open-file (log destination :direction :output :if-exists :append
                                              :if-does-not-exist :create :external-format *utf-8*)
               (write-line line log))))))))

(defun one-line (text)
  "TEXT on one line: newlines become \" // \"."
  (with-output-to-string (out)
    (loop for c across text
          do (if (char= c #\Newline) (write-string " // " out) (write-char c out)))))

(defun text-lines (text)
  "The lines of TEXT (the preludes' backtraces come as text)."
  (with-input-from-string (s text)
    (loop for line = (read-line s nil) while line collect line)))

(defun condition-text (condition)
  (or (ignore-errors
       (let ((*print-readably* nil) (*print-length* 20) (*print-level* 5))
         (princ-to-string condition)))
      "(unprintable condition)"))

(defun backtrace-text (count)
  "At most COUNT frames of the backtrace, from where the condition was
signalled, without the bootstrap's own frames (see %BACKTRACE-LINES)."
  (let ((lines (ignore-errors (%backtrace-lines))))
    (format nil "~{  ~a~%~}" (subseq lines 0 (min count (length lines))))))

(defun failure-text (condition where)
  "The report of CONDITION, signalled in WHERE (a string)."
  (format nil "~a~%(a condition of type ~s, signalled by ~a)~%Backtrace:~%~a"
          (condition-text condition) (type-of condition) where (backtrace-text 15)))

(defvar *exit-reason* nil
  "Why the bootstrap itself ends the Lisp (:error, :done), or NIL.")

(defun announce-stop (signal)
  (let ((text (format nil "Stop ~@[~a ~]daemon" *name*)))
    (message "~a (signal ~d)" text signal)
    (log-line :info text)))

(defun stop-now (signal)
  (announce-stop signal)
  (stop-service)
  (when *control-dir* (control-stop))
  (setf *exit-reason* :stop)
  (%exit 0 nil))

(defun stop-service ()
  "The orderly part of a stop, before the exit ends the other threads:
:stop-function, then every DAEMONIZATION:ACCEPTOR still serving is
drained (it stops accepting, and what it accepted is answered). An error
is told, and the stop goes on."
  (when *conf-stop-function*
    (handler-case (let ((fn (user-function *conf-stop-function*)))
                    (when fn (funcall fn)))
      (serious-condition (c)
        (let ((text (failure-text c ":stop-function")))
          (message "ERROR: ~a" text)
          (log-line :error text)))))
  (dolist (acceptor *acceptors*)
    (ignore-errors (drain acceptor))))

;;; Held listening sockets (:listen) and the Hunchentoot acceptor on them.

(defvar *listener-sockets* '()
  "(FD . SOCKET) for each socket made of a held descriptor: kept referenced,
since a collected socket's finalizer closes its descriptor.")

(defvar *acceptors* '()
  "The DAEMONIZATION:ACCEPTORs that listen, drained when the daemon stops.")

(defun listener-entry (name)
  (or (if name
          (assoc (string name) *listeners* :test #'string=)
          (first *listeners*))
      (error "there is no :listen socket~@[ named ~s~]: the conf ~:[has no :listen~;~:*names ~{~s~^, ~}~]"
             name (mapcar #'first *listeners*))))

(defun listener-fd (&optional name)
  "DAEMONIZATION:LISTENER-FD: the descriptor of the held socket NAME (the
first by default), bound and listening (for Woo's :fd)."
  (second (listener-entry name)))

(defun listener-socket (&optional name)
  "DAEMONIZATION:LISTENER-SOCKET: the held socket NAME (the first by
default) as an SB-BSD-SOCKETS socket, made once and kept."
  (destructuring-bind (fd family) (rest (listener-entry name))
    (or (cdr (assoc fd *listener-sockets*))
        (let ((socket (%socket-of-fd fd family)))
          (push (cons fd socket) *listener-sockets*)
          socket))))

(defparameter *acceptor-source* "
(progn
  (defvar *served* nil
    \"True in a connection's thread once it answered a request.\")
  (defclass daemonization:acceptor (hunchentoot:easy-acceptor)
    ((listener :initarg :listener :initform nil)
     (draining :initform nil :accessor acceptor-draining)
     (handed :initform 0 :accessor acceptor-handed)
     (finished :initform 0 :accessor acceptor-finished))
    (:documentation \"A Hunchentoot acceptor on a socket the tool holds (:listen):
:LISTENER names it (the first by default). It accepts without blocking, so
a stop can end its accepting at once, and a stop drains it: every
connection it took is answered (a kept-alive one after its request), and
connections arriving meanwhile wait in the kernel's queue for the next
Lisp.\"))
  (defmethod hunchentoot:start-listening ((acceptor daemonization:acceptor))
    (let ((socket (listener-socket (slot-value acceptor 'listener))))
      (setf (sb-bsd-sockets:non-blocking-mode socket) t)
      (setf (hunchentoot::acceptor-listen-socket acceptor)
            (usocket::make-stream-server-socket socket :element-type '(unsigned-byte 8))))
    (pushnew acceptor *acceptors*)
    (values))
  (defmethod hunchentoot:accept-connections ((acceptor daemonization:acceptor))
    (let ((listener (hunchentoot::acceptor-listen-socket acceptor))
          (lock (hunchentoot::acceptor-shutdown-lock acceptor)))
      (loop until (or (acceptor-draining acceptor) (hunchentoot::acceptor-shutdown-p acceptor))
            do (when (usocket:wait-for-input listener :ready-only t :timeout 0.1)
                 (let ((client (handler-case (usocket:socket-accept listener)
                                 (error () nil))))
                   (when client
                     (bt:with-lock-held (lock) (incf (acceptor-handed acceptor)))
                     (hunchentoot::set-timeouts client
                                                (hunchentoot:acceptor-read-timeout acceptor)
                                                (hunchentoot:acceptor-write-timeout acceptor))
                     (hunchentoot::handle-incoming-connection
                      (hunchentoot::acceptor-taskmaster acceptor) client)))))))
  ;; Hunchentoot reads shutdown-p before each request of a connection, and
  ;; closes it unread when set: a draining acceptor is shut down only for
  ;; connections that answered a request already.
  (defmethod hunchentoot::acceptor-shutdown-p :around ((acceptor daemonization:acceptor))
    (or (call-next-method) (and *served* (acceptor-draining acceptor))))
  (defmethod hunchentoot:acceptor-dispatch-request :after ((acceptor daemonization:acceptor) request)
    (declare (ignore request))
    (setf *served* t))
  (defmethod hunchentoot:process-connection :around ((acceptor daemonization:acceptor) socket)
    (declare (ignore socket))
    (let ((*served* nil))
      (unwind-protect (call-next-method)
        (let ((lock (hunchentoot::acceptor-shutdown-lock acceptor)))
          (bt:with-lock-held (lock)
            (incf (acceptor-finished acceptor))
            (bt:condition-notify (hunchentoot::acceptor-shutdown-queue acceptor)))))))
  (defmethod drain ((acceptor daemonization:acceptor))
    (unless (acceptor-draining acceptor)
      (setf (acceptor-draining acceptor) t)
      ;; The accepting thread ends within its 0.1 s wait.
      (hunchentoot::shutdown (hunchentoot::acceptor-taskmaster acceptor))
      (let ((lock (hunchentoot::acceptor-shutdown-lock acceptor))
            (queue (hunchentoot::acceptor-shutdown-queue acceptor)))
        (bt:with-lock-held (lock)
          (loop while (< (acceptor-finished acceptor) (acceptor-handed acceptor))
                do (bt:condition-wait queue lock :timeout 1))))
      (ignore-errors (usocket:socket-close (hunchentoot::acceptor-listen-socket acceptor)))
      (setf (hunchentoot::acceptor-listen-socket acceptor) nil
            *acceptors* (remove acceptor *acceptors*)))
    acceptor))"
  "DAEMONIZATION:ACCEPTOR, read and evaluated once Hunchentoot is loaded.")

(defun define-acceptor ()
  "Defines DAEMONIZATION:ACCEPTOR when Hunchentoot is loaded and it is not
defined yet; true when it is defined."
  (or (find-class (find-symbol "ACCEPTOR" "DAEMONIZATION") nil)
      (when (and (find-package "HUNCHENTOOT") (find-package "USOCKET"))
        (let ((*package* (find-package "DAEMONIZATION-BOOTSTRAP")))
          (eval (read-from-string *acceptor-source*)))
        t)))

(defun make-acceptor (&rest initargs)
  "DAEMONIZATION:MAKE-ACCEPTOR: a DAEMONIZATION:ACCEPTOR made with
INITARGS (Hunchentoot's, and :LISTENER), Hunchentoot loaded."
  (unless (define-acceptor)
    (error "DAEMONIZATION:MAKE-ACCEPTOR needs Hunchentoot: load it first (:preload (:hunchentoot))"))
  (apply #'make-instance (find-symbol "ACCEPTOR" "DAEMONIZATION") initargs))

(defgeneric drain (acceptor)
  (:documentation "DAEMONIZATION:DRAIN: the acceptor stops accepting, waits
for what it accepted to be answered, and closes its socket; what arrives
meanwhile waits in the kernel's queue for the next Lisp."))

(defun first-line (text)
  (let ((end (position #\Newline text)))
    (subseq text 0 (min (or end (length text)) 400))))

(defun cause-word (condition otherwise)
  "The cause pipe's word for CONDITION: running out of heap or stack, or
OTHERWISE."
  (let ((name (symbol-name (type-of condition))))
    (cond ((or (search "STACK-EXHAUSTED" name) (search "STACK-OVERFLOW" name)) "stack-exhausted")
          ((or (search "HEAP-EXHAUSTED" name) (search "STORAGE-EXHAUSTED" name)
               (typep condition 'storage-condition))
           "heap-exhausted")
          (t otherwise))))

(defun tell-cause (condition otherwise text)
  "The last word before an exit on CONDITION, for the supervisor (see
*CAUSE-FD*): never fails."
  (when *cause-fd*
    (ignore-errors
     (let ((stream (%open-ready-stream *cause-fd*))
           (word (cause-word condition otherwise)))
       (if (member word '("heap-exhausted" "stack-exhausted") :test #'string=)
           (write-line word stream)
           (format stream "~a ~a~%" word (one-line (first-line text))))
       (finish-output stream)))))

(defun die-on-unhandled-error (condition hook)
  (declare (ignore hook))
  (tell-cause condition "thread-error" (condition-text condition))
  (let ((text (format nil "Unhandled error in ~@[~a ~]daemon: ~a" *name*
                      (failure-text condition (%thread-description)))))
    (message "~a" text)
    (log-line :error text))
  (report "error" (failure-text condition "the daemon"))
  (setf *exit-reason* :error)
  (%exit 70 t))

(defun read-loading-modules (read)
  "Calls READ (a reader of the user's text) and returns what it returns; a
package of a known module that is not loaded yet (ASDF, SB-POSIX, ...) is
loaded, and READ called again."
  (let ((tried '()))
    (loop
      (handler-case (return (funcall read))
        (package-error (c)
          (let* ((name (ignore-errors (string (package-error-package c))))
                 (module (cdr (assoc name *module-packages* :test #'equal))))
            (if (and module (not (member module tried :test #'equal)))
                (progn (push module tried) (%require module))
                (error c))))))))

(defun read-user-form (text)
  "Reads TEXT as the original did (see READ-LOADING-MODULES)."
  (read-loading-modules
   (lambda ()
     (with-standard-io-syntax
       (let ((*package* (find-package "COMMON-LISP-USER"))
             (*read-eval* t))
         (read-from-string text))))))

(defun user-function (text)
  (when text
    (let ((form (read-user-form text)))
      (cond ((functionp form) form)
            ((and form (symbolp form))
             (lambda (&rest args) (apply (fdefinition form) args)))
            ((consp form) (eval form))
            (t (error "~s is not a function" form))))))

(defun call-thunk (key thunk)
  "Calls THUNK for the conf's KEY; an error is reported (the Lisp's own
report and backtrace) and ends the Lisp with status 1."
  (handler-bind ((serious-condition
                   (lambda (c)
                     (let ((text (failure-text c (format nil "~(~s~)" key))))
                       (tell-cause c "error" (format nil "~(~s~): ~a" key (condition-text c)))
                       (message "ERROR: ~a" text)
                       (log-line :error text)
                       (report "error" text)
                       (setf *exit-reason* :error)
                       (%exit 1 t)))))
    (funcall thunk)))

(defun call-user (key text &rest args)
  (call-thunk key (lambda ()
                    (let ((fn (user-function text)))
                      (when fn (apply fn args))))))

(defun say (line)
  "Writes LINE to the starting process (progress of build-core)."
  (let ((stream (ready-stream)))
    (when stream
      (ignore-errors (write-line line stream) (finish-output stream)))))

(defun asdf (name &rest args)
  "Calls the ASDF function NAME (ASDF is loaded at run time, after this
file is read)."
  (apply (intern name "ASDF") args))

(defun preload (&key progress)
  "Loads *PRELOAD*: each system with ASDF, each file with LOAD; with
PROGRESS, says which as it goes."
  (dolist (item *preload*)
    (destructuring-bind (kind name) item
      (when progress
        (say (format nil "loading ~a" (if (eq kind :code) "the conf's preload function" name))))
      (ecase kind
        (:system (%require "ASDF") (asdf "LOAD-SYSTEM" name))
        (:file (load name))
        (:code (funcall (user-function name)))))))

(defun loaded-sources ()
  "Every source file of the systems ASDF has loaded (and their .asd
files), and the preloaded files: what a saved core is made of."
  (let ((files '()))
    (labels ((add (path) (when (and path (probe-file path)) (push (namestring (truename path)) files)))
             (walk (component)
               (if (typep component (intern "PARENT-COMPONENT" "ASDF"))
                   (mapc #'walk (asdf "COMPONENT-CHILDREN" component))
                   (add (asdf "COMPONENT-PATHNAME" component)))))
      (when (find-package "ASDF")
        (dolist (name (asdf "ALREADY-LOADED-SYSTEMS"))
          (let ((system (asdf "FIND-SYSTEM" name nil)))
            (when system
              (add (asdf "SYSTEM-SOURCE-FILE" system))
              (walk system)))))
      (dolist (item *preload*)
        (when (eq (first item) :file) (add (second item)))))
    (remove-duplicates files :test #'string=)))

(defun searched-directories ()
  "The directories whose entries decide which copy of a system ASDF (or
Quicklisp) finds, as native names: ASDF's central registry and source
registry (a tree with its subdirectories), Quicklisp's installed systems
and local projects. A system added to one of them may shadow one the
core holds."
  (let ((dirs '()) (count 0) (walked (make-hash-table :test #'equal)))
    (labels ((add (dir)
               "DIR's truename, added once; NIL when it is no directory."
               (let ((true (%directory-truename dir)))
                 (when (and true (< count 10000))
                   (let ((name (%native-namestring true)))
                     (unless (member name dirs :test #'string=)
                       (incf count)
                       (push name dirs)))
                   true)))
             (tree (dir exclude)
               (let ((true (add dir)))
                 (when (and true (not (gethash (%native-namestring true) walked)))
                   (setf (gethash (%native-namestring true) walked) t)
                   (dolist (sub (ignore-errors (directory (merge-pathnames "*/" true))))
                     (unless (member (car (last (pathname-directory sub))) exclude :test #'equal)
                       (tree sub exclude))))))
             (symbol (name package)
               (let ((symbol (and (find-package package) (find-symbol name package))))
                 (and symbol (boundp symbol) (symbol-value symbol)))))
      (when (find-package "ASDF")
        ;; Entries are directories, or forms ASDF evaluates to one.
        (dolist (entry (symbol "*CENTRAL-REGISTRY*" "ASDF"))
          (let ((dir (ignore-errors (if (consp entry) (eval entry) (symbol-value* entry)))))
            (when (or (stringp dir) (pathnamep dir))
              (add (%directory-pathname (namestring dir))))))
        (let ((flatten (find-symbol "FLATTEN-SOURCE-REGISTRY" "ASDF/SOURCE-REGISTRY")))
          (dolist (entry (and flatten (ignore-errors (funcall flatten))))
            (destructuring-bind (dir &key recurse exclude &allow-other-keys) entry
              (if recurse (tree dir exclude) (add dir))))))
      (when (find-package "QL-DIST")
        (dolist (dist (ignore-errors (funcall (find-symbol "ALL-DISTS" "QL-DIST"))))
          (add (merge-pathnames "installed/systems/"
                                (funcall (find-symbol "BASE-DIRECTORY" "QL-DIST") dist)))))
      (dolist (dir (symbol "*LOCAL-PROJECT-DIRECTORIES*" "QUICKLISP-CLIENT"))
        (tree dir '(".git" ".hg" "_darcs"))))
    (reverse dirs)))

(defun asdf-configuration ()
  "ASDF's source-registry configuration where it exists (the user's and
the system's files and .conf.d directories, and the directories that hold
them): a change there may make ASDF find a system elsewhere."
  (let ((paths '()))
    (dolist (function '("XDG-CONFIG-PATHNAMES" "SYSTEM-CONFIG-PATHNAMES"))
      (let ((function (and (find-package "UIOP") (find-symbol function "UIOP"))))
        (when (and function (fboundp function))
          (dolist (name '("common-lisp/" "common-lisp/source-registry.conf"
                          "common-lisp/source-registry.conf.d/"))
            (dolist (path (ignore-errors (funcall function name)))
              (let ((true (ignore-errors (probe-file path))))
                (when true
                  (pushnew (%native-namestring true) paths :test #'string=))))))))
    (nreverse paths)))

(defun symbol-value* (entry)
  "ENTRY itself, or its value when it is a bound symbol (an entry of
ASDF:*CENTRAL-REGISTRY* may be either)."
  (if (and (symbolp entry) entry (boundp entry)) (symbol-value entry) entry))

(defun last-lines (text count)
  (let ((lines (text-lines text)))
    (format nil "~{~a~%~}" (last lines count))))

(defun build-core ()
  "Loads *PRELOAD* and saves the image to *CORE-FILE*, telling the tool
the source files it is made of. The compiler's notes (the builder has no
terminal) are kept, and their last lines told before an error's report."
  (let ((notes (make-string-output-stream)))
    (flet ((tell-notes (condition)
             (declare (ignore condition))
             (let ((text (get-output-stream-string notes)))
               (when (plusp (length text))
                 (say "notes")
                 (say (string-right-trim '(#\Newline) (last-lines text 30)))
                 (say "end-of-notes")))))
      (call-thunk :preload
                  (lambda ()
                    (handler-bind ((serious-condition #'tell-notes))
                      (let ((*error-output* notes)
                            (*standard-output* notes))
                        (preload :progress t)))))))
  (build-core-save))

(defun build-core-save ()
  (dolist (file (append (loaded-sources) (asdf-configuration)))
    (say (format nil "source ~a" file)))
  (dolist (dir (searched-directories))
    (say (format nil "searched ~a" dir)))
  (say "saving")
  (call-thunk :preload (lambda () (%save-core *core-file*))))

(defun tell-reload (word tag &optional text)
  "Writes a reload's verdict, WORD and the number TAG the reload was asked
with, to the reload pipe, if there is one, after dropping any verdict
nobody read."
  (when *reload-fd*
    (ignore-errors
     (%drain (1+ *reload-fd*))
     (let ((stream (or (get '*reload-fd* 'stream)
                       (setf (get '*reload-fd* 'stream) (%open-ready-stream *reload-fd*)))))
       (format stream "~a ~d~%" word tag)
       (when text
         (write-string text stream)
         (fresh-line stream)
         (write-line "end-of-report" stream))
       (finish-output stream)))))

(defvar *ready* nil "Whether the daemon is ready (and said so).")
(defvar *main-returned* nil "Whether :main-function has returned.")
(defvar *reload-pending* nil "The number of a SIGHUP that came before that.")

(defun reload (tag)
  "SIGHUP (with the number TAG): calls :reload-function once the daemon is
ready (a SIGHUP before waits for it); its error is reported, not fatal."
  (if (or *ready* *main-returned*)
      (call-reload-function tag)
      (setf *reload-pending* tag)))

(defun run-pending-reload ()
  (when *reload-pending*
    (let ((tag *reload-pending*))
      (setf *reload-pending* nil)
      (call-reload-function tag))))

(defun now-ready (&optional status)
  "Tells the starting process (once; with the daemon's STATUS text, if
given), then runs a reload asked for meanwhile."
  (unless *ready*
    (setf *ready* t)
    (when status
      (say (format nil "status ~a" (one-line (subseq status 0 (min (length status) 200))))))
    (when *control-dir* (control-ready))
    (report "ready")
    (run-pending-reload)))

(defun daemon-says-ready (&optional status)
  "DAEMONIZATION:READY: the daemon says it is ready (:ready :notify), from
any thread, at most once; later calls do nothing. STATUS, a string, is
shown by the service manager (systemd's STATUS=)."
  (now-ready (and (stringp status) status))
  t)

(defun define-api ()
  "The package DAEMONIZATION, the daemon's side of the tool: defined (or
redefined, on a saved core) by every bootstrap, so the functions always
reach this bootstrap's state."
  (let ((package (or (find-package "DAEMONIZATION")
                     (make-package "DAEMONIZATION" :use '()))))
    (flet ((api (name function doc)
             (let ((symbol (intern name package)))
               (export symbol package)
               (setf (fdefinition symbol) function
                     (documentation symbol 'function) doc))))
      (api "READY" #'daemon-says-ready (documentation 'daemon-says-ready 'function))
      (api "LISTENER-FD" #'listener-fd (documentation 'listener-fd 'function))
      (api "LISTENER-SOCKET" #'listener-socket (documentation 'listener-socket 'function))
      (api "MAKE-ACCEPTOR" #'make-acceptor (documentation 'make-acceptor 'function))
      (api "DRAIN" #'drain "The acceptor stops accepting, answers what it accepted, and closes its socket.")
      (export (intern "ACCEPTOR" package) package))))

(defun call-reload-function (tag)
  (block reload
    (handler-bind ((serious-condition
                     (lambda (c)
                       (let ((text (failure-text c ":reload-function")))
                         (message "ERROR: ~a" text)
                         (log-line :error text)
                         (tell-reload "error" tag text)
                         (return-from reload)))))
      (let ((fn (user-function *reload-function*)))
        (when fn (funcall fn))))
    (log-line :info (format nil "Reloaded ~@[~a ~]daemon" *name*))
    (tell-reload "reloaded" tag)))

(defun settle ()
  "On a saved core, collects the garbage of the start (the bootstrap,
:main-function's) before the daemon says it is ready (SBCL: a full GC,
about 4 ms there): what came from the core stays in the pages shared with
the other daemons of that core, and what the daemon keeps is what stays
resident. Not without a core: collecting what the start loaded costs it
some 30 ms (swank). Before ready, not after: SBCL 2.2.9 stopped just after
such a collection hung or corrupted its heap."
  (when *from-core*
    (%collect-garbage)))

(defun serve ()
  "Starts the service, in the daemon or in the foreground: :before-init-fn,
the preload (unless the core holds it), :main-function; then, settled, it
is ready."
  (call-user :before-init-fn *before-init-fn*)
  (unless *from-core* (call-thunk :preload #'preload))
  (when *listeners* (define-acceptor))
  (call-user :main-function *main-function*)
  (setf *main-returned* t)
  (settle)
  (if (eq *ready-mode* :returned)
      (now-ready)
      (run-pending-reload)))

(defun wait-until-stopped ()
  (%wait-for-stop #'stop-now))

(defun run ()
  (when *output-file*
    (%keep-output-lines *output-file*))
  (when *directory*
    (setf *default-pathname-defaults* (%directory-pathname *directory*)))
  (dolist (fd (remove nil (list* *ready-fd* *cause-fd* *close-fds*)))
    (%set-cloexec fd))
  ;; SIGINT too, at a terminal as well: Ctrl-C stops a nodaemon Lisp as
  ;; SIGTERM does (the stop line, exit 0).
  (%install-stop-handlers #'stop-now t)
  (%install-debugger-hook #'die-on-unhandled-error)
  (when *reload-function*
    (%install-reload-handler #'reload))
  (define-api)
  (%user-evaluation)
  (dolist (module *required-modules*) (%require module))
  (when *fasl-dir*
    (funcall (intern "INITIALIZE-OUTPUT-TRANSLATIONS" "ASDF")
             `(:output-translations (t (,*fasl-dir* :implementation :**/ :*.*.*))
                                    :ignore-inherited-configuration)))
  (in-package "COMMON-LISP-USER")
  (when (and *control-dir* (member *mode* '(:daemon :foreground)))
    (handler-case (start-control)
      (serious-condition (c)
        (let ((text (format nil "cannot open the control socket in ~a: ~a; eval, repl and the watchdog cannot reach this daemon"
                            *control-dir* (condition-text c))))
          (message "ERROR: ~a" text)
          (log-line :error text)
          (setf *control-dir* nil)))))
  (ecase *mode*
    (:call
     (apply #'call-user :before-parent-exit-fn *main-function* *args*)
     (setf *exit-reason* :done)
     (%exit 0 nil))
    (:build-core
     (build-core))
    (:daemon
     (serve)
     (wait-until-stopped))
    (:foreground
     (serve)
     (if (interactive-stream-p *standard-input*)
         (%repl)
         (wait-until-stopped)))))

(run)
