;;;; The control socket: a Unix socket in the daemon's private directory
;;;; (*CONTROL-DIR*, made by the tool: 0700, owned by the daemon's user),
;;;; through which `eval`, `repl`, `status -v`, `reload`, the watchdog and
;;;; SLIME reach the running image, with no TCP port. Read after the
;;;; preludes, once SB-BSD-SOCKETS is loaded (SBCL and ECL).
;;;;
;;;; The protocol is src/wire/control.rs (a test checks this file against
;;;; it): one message a line, WORD or WORD TEXT, TEXT escaped (\\ and \n).
;;;; The daemon greets with "hello PID PACKAGE"; every request is answered
;;;; by zero or more "out", "value", "fact" and "error" lines and one "done
;;;; PACKAGE". Every connection's peer is checked (SO_PEERCRED) before a
;;;; byte is read: only root and the daemon's own user are served.
;;;;
;;;; The socket is bound as DIR/PID (this Lisp's pid) and renamed to
;;;; DIR/socket once the daemon is ready, so during a zero-downtime restart
;;;; the name stays with the Lisp that serves until the new one is ready.

(defvar *control-socket* nil "The listening control socket, kept referenced.")
(defvar *control-started* (get-universal-time))
(defvar *control-own* nil "This Lisp's own name in *CONTROL-DIR*.")
(defparameter *control-max-line* (* 1024 1024)
  "The longest request line read; a longer one ends the connection.")

(define-condition interrupted (error) ()
  (:report "Interrupted (Ctrl-C in the REPL)"))

(defun wire-escape (text)
  (with-output-to-string (out)
    (loop for c across text
          do (case c
               (#\\ (write-string "\\\\" out))
               (#\Newline (write-string "\\n" out))
               (#\Return (write-string "\\r" out))
               (t (write-char c out))))))

(defun wire-unescape (text)
  (with-output-to-string (out)
    (loop with i = 0
          while (< i (length text))
          do (let ((c (char text i)))
               (if (and (char= c #\\) (< (1+ i) (length text)))
                   (let ((next (char text (1+ i))))
                     (write-char (case next (#\n #\Newline) (#\r #\Return) (t next)) out)
                     (incf i 2))
                   (progn (write-char c out) (incf i)))))))

(defun control-path (name)
  (concatenate 'string *control-dir* name))

(defun send (stream word &optional text)
  (let ((line (if text
                  (format nil "~a ~a~%" word (wire-escape text))
                  (format nil "~a~%" word))))
    (write-sequence (%string-to-octets line) stream)
    (finish-output stream)))

(defun read-request (stream)
  "The next request line, without its newline; NIL at the end, or when the
line is too long."
  (let ((bytes (make-array 64 :element-type '(unsigned-byte 8) :adjustable t :fill-pointer 0)))
    (loop for byte = (read-byte stream nil nil)
          do (cond ((null byte) (return nil))
                   ((= byte 10) (return (%octets-to-string (coerce bytes '(vector (unsigned-byte 8))))))
                   ((>= (length bytes) *control-max-line*) (return nil))
                   (t (vector-push-extend byte bytes))))))

(defun split-request (line)
  (let ((space (position #\Space line)))
    (if space
        (values (subseq line 0 space) (wire-unescape (subseq line (1+ space))))
        (values line nil))))

(defun start-control ()
  "Binds DIR/PID, listens, and serves it from a thread of its own."
  (let ((socket (make-instance 'sb-bsd-sockets:local-socket :type :stream))
        (own (control-path (princ-to-string (%getpid)))))
    (%unlink own)
    (sb-bsd-sockets:socket-bind socket own)
    (sb-bsd-sockets:socket-listen socket 16)
    (%set-cloexec (sb-bsd-sockets:socket-file-descriptor socket))
    (setf *control-socket* socket
          *control-own* own)
    (%start-gc-count)
    (%make-thread "daemonization control" (lambda () (control-loop socket)))))

(defun control-ready ()
  "The daemon is ready: DIR/socket is now this Lisp's."
  (when *control-own*
    (when (%rename *control-own* (control-path "socket"))
      (setf *control-own* nil))))

(defun control-stop ()
  "Before an exit: this Lisp's own name goes (DIR/socket, maybe a newer
Lisp's by now, is left to the tool)."
  (when *control-own*
    (%unlink *control-own*)))

(defun control-loop (socket)
  (loop
    (let ((client (handler-case (sb-bsd-sockets:socket-accept socket)
                    (error () nil))))
      (if (null client)
          (sleep 0.1)                   ; EMFILE and the like: not a spin
          (let ((fd (sb-bsd-sockets:socket-file-descriptor client)))
            (%set-cloexec fd)
            (multiple-value-bind (pid uid) (ignore-errors (%peer-credentials fd))
              (if (and uid (or (= uid 0) (= uid (%getuid))))
                  (%make-thread "daemonization control connection"
                                ;; A client that goes away, or sends what
                                ;; is not UTF-8, ends its connection only.
                                (lambda () (handler-case (serve-control client)
                                             (serious-condition () nil))))
                  (progn
                    (ignore-errors (sb-bsd-sockets:socket-close client))
                    (log-line :error (format nil "control socket: refused a connection of uid ~a (pid ~a): only root and the daemon's user are served" uid pid))))))))))

(defstruct session
  (package (find-package "COMMON-LISP-USER"))
  (thread nil)
  (evaluating nil))

(defun interrupt-session (session)
  "Interrupts the form the session's thread evaluates, if it still does:
an interrupt that comes before or after the evaluation does nothing."
  (let ((thread (session-thread session)))
    (when (and thread (%thread-alive-p thread))
      (ignore-errors
       (%interrupt-thread thread (lambda ()
                                   (when (session-evaluating session)
                                     (error 'interrupted))))))))

(defun serve-control (client)
  (let ((stream (sb-bsd-sockets:socket-make-stream client :input t :output t
                                                          :element-type '(unsigned-byte 8)
                                                          :buffering :full))
        (session (make-session))
        (handed nil))
    (unwind-protect
         (progn
           (send stream "hello" (format nil "~d ~a" (%getpid) (package-name (session-package session))))
           (loop for line = (read-request stream)
                 while line
                 do (multiple-value-bind (word text) (split-request line)
                      (when (eq (handle-request stream session word text) :handed)
                        (setf handed t)
                        (return)))))
      (unless handed
        (interrupt-session session)
        (ignore-errors (close stream))
        (ignore-errors (sb-bsd-sockets:socket-close client))))))

(defun busy-p (session)
  (let ((thread (session-thread session)))
    (and thread (%thread-alive-p thread))))

(defun done (stream session)
  (send stream "done" (package-name (session-package session))))

(defun handle-request (stream session word text)
  "Answers one request. While a form is evaluated only \"interrupt\" is
heard."
  (cond ((string= word "interrupt")
         (interrupt-session session))
        ((busy-p session))
        ((and (string= word "eval") text)
         (setf (session-thread session)
               (%make-thread "daemonization eval"
                             (lambda ()
                               ;; A client gone mid-answer ends only this.
                               (handler-case (eval-request stream session text)
                                 (serious-condition () nil))))))
        ((and (string= word "package") text)
         (let ((package (or (find-package text) (find-package (string-upcase text)))))
           (if package
               (setf (session-package session) package)
               (send stream "error" (format nil "there is no package named ~s" text)))
           (done stream session)))
        ((string= word "status")
         (dolist (fact (runtime-facts))
           (send stream "fact" (format nil "~a ~a" (car fact) (cdr fact))))
         (done stream session))
        ((string= word "ping")
         (let ((failure (watchdog-check)))
           (when failure (send stream "error" failure)))
         (done stream session))
        ((string= word "reload")
         (let ((failure (reload-now)))
           (when failure (send stream "error" failure)))
         (done stream session))
        ((string= word "swank")
         (let ((failure (hand-to-swank stream session)))
           (cond (failure (send stream "error" failure) (done stream session))
                 (t :handed))))
        (t
         (send stream "error" (format nil "unknown request ~s" (subseq word 0 (min 40 (length word)))))
         (done stream session))))

(defun read-form (text start)
  "The next form of TEXT from START, and where the one after starts (see
READ-LOADING-MODULES)."
  (read-loading-modules (lambda () (read-from-string text nil text :start start))))

(defun eval-request (stream session text)
  "Reads and evaluates the forms of TEXT in the session's package, one by
one: what each wrote to *STANDARD-OUTPUT*, then each of its values; the
first that signals ends it with its condition's text."
  (let ((*package* (session-package session))
        (*read-eval* t)
        (start 0))
    (loop
      (let* ((out (make-string-output-stream))
             (failure
               (catch 'debugger
                 (handler-case
                     (multiple-value-bind (form next) (read-form text start)
                       (when (eq form text) (return))
                       (setf start next)
                       (let ((values (%call-with-debugger-escape
                                      (lambda ()
                                        (multiple-value-list
                                         (let ((*standard-output* out))
                                           (unwind-protect
                                                (progn (setf (session-evaluating session) t)
                                                       (eval form))
                                             (setf (session-evaluating session) nil)))))
                                      (lambda (c) (throw 'debugger (condition-text c))))))
                         (flush-output stream out)
                         (dolist (v values)
                           (send stream "value" (or (ignore-errors (prin1-to-string v))
                                                    "#<unprintable value>")))
                         nil))
                   (serious-condition (c) (condition-text c))))))
        (when failure
          (flush-output stream out)
          (send stream "error" failure)
          (return))))
    (setf (session-package session) *package*))
  (done stream session))

(defun flush-output (stream out)
  (let ((text (get-output-stream-string out)))
    (when (plusp (length text))
      (send stream "out" text))))

(defun runtime-facts ()
  "What only the image knows: (KEY . TEXT) each, KEY repeated for lists."
  (append
   (%runtime-facts)
   (list (cons "uptime-seconds" (princ-to-string (- (get-universal-time) *control-started*))))
   (mapcar (lambda (name) (cons "thread" name)) (%thread-names))
   (let ((asdf (find-package "ASDF")))
     (when asdf
       (let ((loaded (find-symbol "ALREADY-LOADED-SYSTEMS" asdf)))
         (when (and loaded (fboundp loaded))
           (mapcar (lambda (name) (cons "system" name))
                   (ignore-errors (sort (copy-list (funcall loaded)) #'string<)))))))))

(defun watchdog-check ()
  "NIL when the daemon is well: the conf's :watchdog check returned true
within its thread; else why not."
  (if *watchdog-check*
      (handler-case (let ((fn (user-function *watchdog-check*)))
                      (if (or (null fn) (funcall fn))
                          nil
                          "the watchdog check returned false"))
        (serious-condition (c) (format nil "the watchdog check failed: ~a" (condition-text c))))
      nil))

(defun reload-now ()
  "Calls :reload-function here: NIL once it returned, else its report."
  (if (null *reload-function*)
      "the conf has no :reload-function"
      (block reload
        (handler-bind ((serious-condition
                         (lambda (c)
                           (let ((text (failure-text c ":reload-function")))
                             (log-line :error text)
                             (return-from reload text)))))
          (let ((fn (user-function *reload-function*)))
            (when fn (funcall fn))))
        (log-line :info (format nil "Reloaded ~@[~a ~]daemon" *name*))
        nil)))

(defun hand-to-swank (stream session)
  "The connection becomes a swank connection (SLIME's protocol on the same
stream, after a \"done\" that says so): NIL, or why it cannot."
  (unless (find-package "SWANK")
    (handler-case (progn (%require "ASDF")
                         (funcall (intern "LOAD-SYSTEM" "ASDF") "swank"))
      (serious-condition (c)
        (return-from hand-to-swank
          (format nil "swank cannot be loaded (~a): install it (on Debian: cl-swank) or add :swank to :preload"
                  (condition-text c))))))
  (let ((make (find-symbol "MAKE-CONNECTION" "SWANK"))
        (serve (find-symbol "SERVE-REQUESTS" "SWANK")))
    (if (and make serve)
        (let ((init (find-symbol "INIT-LOG-OUTPUT" "SWANK")))
          (when (and init (fboundp init)) (funcall init))
          (done stream session)
          (funcall serve (funcall make nil stream :spawn))
          nil)
        "this swank has no SWANK::MAKE-CONNECTION: use the swank of SLIME 2.x")))
