;;;; The SBCL prelude of the bootstrap: what SBCL does its own way (the
;;;; shared defaults, prelude-common.lisp, give the rest).

;;; The bootstrap's own functions are interpreted, not compiled: running the
;;; native compiler on them costs about 12 MB of resident memory and most of
;;; the start-up time. The user's code is read and compiled in the evaluator
;;; mode the user had (see %USER-EVALUATION).
(defparameter *user-evaluator-mode* sb-ext:*evaluator-mode*)
(setq sb-ext:*evaluator-mode* :interpret)

(defparameter *utf-8* :utf-8
  "The UTF-8 external format, as this Lisp names it.")

(defun %user-evaluation ()
  (setq sb-ext:*evaluator-mode* *user-evaluator-mode*))

(defun %save-core (path)
  "Saves this image to PATH and exits. The bootstrap's package is renamed
first, so a Lisp started from the core defines its own afresh."
  (rename-package (find-package "DAEMONIZATION-BOOTSTRAP") "DAEMONIZATION-BOOTSTRAP-OF-A-BUILD")
  (sb-ext:save-lisp-and-die path :executable nil))

(defun %directory-pathname (namestring)
  "NAMESTRING, a native directory name, as a pathname: [, * and \\ are
characters of the name, not wildcards or escapes."
  (sb-ext:parse-native-namestring namestring nil *default-pathname-defaults* :as-directory t))

(defun %getpid () (sb-unix:unix-getpid))

(defun %native-namestring (path) (sb-ext:native-namestring path))

(defun %collect-garbage ()
  ;; A stop waits until the collection (and the after-GC hooks) are done.
  (sb-sys:without-interrupts (sb-ext:gc :full t)))

(defparameter *other-threads-timeout* 0.5
  "Seconds an orderly exit waits for the other threads to end once told to
(SB-EXT:EXIT's :TIMEOUT): a thread that defers interrupts (a busy server's
worker inside WITHOUT-INTERRUPTS, say) must not hold a stop for seconds;
the stop schedule bounds the rest (the main thread's unwinding and the exit
hooks).")

(defun %finish-exit (code)
  "The end of an orderly exit, after the conf's exit hooks: tells the other
threads to end and waits for them within *OTHER-THREADS-TIMEOUT*, names
those left behind, flushes the standard streams and exits with CODE (C's
exit).
SB-EXT:EXIT's own end is not used: it waits for the threads holding SBCL's
thread-creation lock, which a thread told to end while it makes a thread
(Hunchentoot's listener, for each connection) waits for with interrupts
off (the exit waited out its whole timeout, the port still open); and it
joins the finalizer thread, which SBCL 2.2.9 can leave stopped for a
collection that is over (a stop just after one hung for good)."
  (let ((deadline (+ (get-internal-real-time)
                     (round (* *other-threads-timeout* internal-time-units-per-second)))))
    (flet ((left () (max 0 (/ (- deadline (get-internal-real-time))
                              internal-time-units-per-second)))
           (others ()
             (remove-if (lambda (thread)
                          (or (eq thread sb-thread:*current-thread*)
                              (sb-thread:main-thread-p thread)
                              (sb-thread:thread-ephemeral-p thread)))
                        (sb-thread:list-all-threads))))
      ;; A thread whose cleanup signals ends quietly, as in SB-EXT:EXIT
      ;; (not through the daemon's debugger hook, which exits with 70).
      (setf sb-ext:*invoke-debugger-hook* (lambda (condition hook)
                                            (declare (ignore condition hook))
                                            (unless (sb-thread:main-thread-p)
                                              (sb-thread:abort-thread)))
            *debugger-hook* nil)
      ;; Again for the threads a thread made before it ended.
      (loop repeat 3
            for others = (others)
            while (and others (plusp (left)))
            do (dolist (thread others)
                 (ignore-errors (sb-thread:terminate-thread thread)))
               (dolist (thread others)
                 ;; SBCL 2.2.9 refuses a timeout of 0.
                 (when (plusp (left))
                   (ignore-errors
                    (sb-thread:join-thread thread :default nil :timeout (left))))))
      (let ((left-behind (others)))
        (when left-behind
          (ignore-errors
           (format *error-output* "~&Threads that did not end within ~a s of the stop: ~{~s~^, ~}~%"
                   *other-threads-timeout* (mapcar #'sb-thread:thread-name left-behind)))))))
  ;; What each thread of a line keeper held (the other threads are ended).
  (when *line-keeper*
    (ignore-errors (%keeper-flush-all (stream-keeper *line-keeper*))))
  (dolist (stream (list *standard-output* *error-output* *trace-output*))
    (ignore-errors (finish-output stream)))
  ;; C's exit: C's own buffered output flushed and atexit handlers run, as
  ;; SB-EXT:EXIT would.
  (sb-alien:alien-funcall (sb-alien:extern-alien "exit" (function sb-alien:void sb-alien:int))
                          code))

(defun %exit (code abort)
  "Exits with CODE: unwinding and running the exit hooks unless ABORT, the
other threads ended after them (see %FINISH-EXIT)."
  (if abort
      (sb-ext:exit :code code :abort t)
      (progn
        (setf sb-ext:*exit-hooks*
              (append sb-ext:*exit-hooks* (list (lambda () (%finish-exit code)))))
        (sb-ext:exit :code code :abort nil :timeout *other-threads-timeout*))))

(defun %open-ready-stream (fd)
  (sb-sys:make-fd-stream fd :output t :buffering :full :external-format :utf-8))

(defun %set-cloexec (fd)
  ;; fcntl (fd, F_SETFD, FD_CLOEXEC): the Lisp's own children must not
  ;; inherit the pid-file lock or the readiness pipe.
  (sb-alien:alien-funcall
   (sb-alien:extern-alien "fcntl" (function sb-alien:int sb-alien:int sb-alien:int sb-alien:int))
   fd 2 1))

(defvar *stop-request* (sb-thread:make-semaphore :name "stop request")
  "Signalled by a stop signal once the main thread waits for one.")

(defvar *stop-signal* nil
  "The number of the stop signal that came.")

(defvar *waiting-for-stop* nil
  "True once the main thread only waits for a stop (%WAIT-FOR-STOP).")

(defvar *stop-function* nil
  "What a stop calls in the main thread, with the signal's number.")

(defun %install-stop-handlers (stop with-sigint)
  "SIGUSR1 and SIGTERM (and SIGINT when WITH-SIGINT) stop the daemon with
the signal's number. Once the main thread only waits (%WAIT-FOR-STOP), the
handler just wakes it and the stop runs outside any handler: exiting from
inside one, while other threads allocated, crashed SBCL 2.2.9 at times
(memory faults, lost GC invariants). Before that (the main thread still
busy in :main-function, or at the REPL), the handler runs STOP in the main
thread, where the kernel may have delivered the signal to another. The
handler is compiled (a few ms): an interpreted one conses in the signal's
context, which lost a GC invariant too."
  (setf *stop-function* stop)
  (let ((handler
          (compile nil '(lambda (signal info context)
                          (declare (ignore info context))
                          (setf *stop-signal* signal)
                          (cond (*waiting-for-stop*
                                 (sb-thread:signal-semaphore *stop-request*))
                                ((sb-thread:main-thread-p)
                                 (funcall *stop-function* signal))
                                (t
                                 (let ((stop *stop-function*))
                                   (sb-thread:interrupt-thread
                                    (sb-thread:main-thread)
                                    (lambda () (funcall stop signal))))))))))
    (sb-sys:enable-interrupt sb-unix:sigusr1 handler)
    (sb-sys:enable-interrupt sb-unix:sigterm handler)
    (when with-sigint
      (sb-sys:enable-interrupt sb-unix:sigint handler))))

(defvar *reload-requests* '()
  "The values of the SIGHUPs the waiting main thread has yet to handle.")

(defvar *reload-handler* nil
  "What a SIGHUP calls in the main thread, with the signal's value.")

(defun %wait-for-stop (stop)
  "Waits in the main thread for a stop signal, then calls STOP with it;
meanwhile runs the reloads SIGHUPs ask for (while one runs, a stop
interrupts it, as before the wait)."
  (loop
    (setf *waiting-for-stop* t)
    (sb-thread:wait-on-semaphore *stop-request*)
    (when *stop-signal*
      (funcall stop *stop-signal*))
    (let ((pending (loop for old = *reload-requests*
                         when (eq old (sb-ext:compare-and-swap
                                       (symbol-value '*reload-requests*) old '()))
                           return (reverse old))))
      (when pending
        (setf *waiting-for-stop* nil)
        ;; A stop that came as the flag changed is run here.
        (when *stop-signal*
          (funcall stop *stop-signal*))
        (dolist (value pending)
          (funcall *reload-handler* value))))))

(defun %install-reload-handler (reload)
  "SIGHUP calls RELOAD with the signal's value (the number `reload` sent
with it, SI_QUEUE; else 0) in the main thread, with interrupts enabled (a
stop during a long reload is not deferred). Once the main thread only
waits (%WAIT-FOR-STOP), the handler queues the value and wakes it, and the
reload runs outside any handler, as the stop does; the handler is
compiled, as the stop's is."
  (setf *reload-handler* reload)
  (sb-sys:enable-interrupt
   sb-unix:sighup
   (compile nil '(lambda (signal info context)
                   (declare (ignore signal context))
                   ;; siginfo_t on Linux x86-64: si_code at 8, si_value at 24.
                   (let* ((queued (and info (= -1 (sb-sys:signed-sap-ref-32 info 8))))
                          (value (if queued (sb-sys:signed-sap-ref-32 info 24) 0)))
                     (if *waiting-for-stop*
                         (progn
                           (sb-ext:atomic-push value (symbol-value '*reload-requests*))
                           (sb-thread:signal-semaphore *stop-request*))
                         (let ((reload *reload-handler*))
                           (flet ((run () (sb-sys:with-interrupts (funcall reload value))))
                             (if (sb-thread:main-thread-p)
                                 (run)
                                 (sb-thread:interrupt-thread (sb-thread:main-thread)
                                                             #'run))))))))))

(defun %drain (fd)
  "Reads and drops what the pipe FD holds, never blocking (verdicts of
reloads nobody asked through the tool, a kill -HUP, must not fill it)."
  (let ((fcntl (sb-alien:extern-alien "fcntl" (function sb-alien:int sb-alien:int sb-alien:int sb-alien:int))))
    ;; F_SETFL (4), F_GETFL (3) | O_NONBLOCK (#o4000).
    (sb-alien:alien-funcall fcntl fd 4 (logior #o4000 (sb-alien:alien-funcall fcntl fd 3 0))))
  (let ((buffer (make-array 4096 :element-type '(unsigned-byte 8))))
    (sb-sys:with-pinned-objects (buffer)
      (loop for n = (sb-unix:unix-read fd (sb-sys:vector-sap buffer) 4096)
            while (and n (plusp n))))))

(defun %install-debugger-hook (hook)
  (setf sb-ext:*invoke-debugger-hook* hook
        *debugger-hook* hook))

(defun %thread-description ()
  (if (sb-thread:main-thread-p)
      "the main thread"
      (format nil "the thread ~s" (or (sb-thread:thread-name sb-thread:*current-thread*) "(unnamed)"))))

(defun %syslog (priority line)
  ;; openlog keeps the ident pointer: it is allocated once and never freed.
  (unless (get '%syslog 'open)
    (sb-alien:alien-funcall
     (sb-alien:extern-alien "openlog" (function sb-alien:void (* sb-alien:char) sb-alien:int sb-alien:int))
     (sb-alien:make-alien-string "daemonization") 1 24) ; LOG_PID, LOG_DAEMON
    (setf (get '%syslog 'open) t))
  (sb-alien:alien-funcall
   (sb-alien:extern-alien "syslog" (function sb-alien:void sb-alien:int sb-alien:c-string sb-alien:c-string))
   (logior 24 priority) "%s" line))

(defun frame-text (line)
  "A backtrace line without its frame number."
  (let ((colon (search ": " line)))
    (if colon (subseq line (+ colon 2)) line)))

(defun frame-starts-with (prefix line)
  (eql 0 (search prefix (frame-text line))))

(defun bootstrap-frame-p (line)
  (some (lambda (prefix) (frame-starts-with prefix line))
        '("(SB-EVAL::" "(SB-EVAL:" "(DAEMONIZATION-BOOTSTRAP::")))

(defun %backtrace-lines ()
  "The frames between the signalling of the condition and the bootstrap's
own (interpreted) frames, numbered from 0."
  (let* ((text (with-output-to-string (s)
                 (let ((*print-readably* nil) (*print-pretty* nil)
                       (*print-length* 10) (*print-level* 3))
                   (sb-debug:print-backtrace :count 200 :stream s))))
         (lines (text-lines text))
         (signal (position-if (lambda (l) (or (frame-starts-with "(SB-KERNEL::%SIGNAL " l)
                                              (frame-starts-with "(INVOKE-DEBUGGER " l)))
                              lines :from-end t))
         (lines (if signal
                    (nthcdr (1+ signal) lines)
                    (member-if-not #'bootstrap-frame-p (rest lines))))
         (ours (position-if #'bootstrap-frame-p lines)))
    ;; Numbered from 0, where the condition was signalled (SBCL's numbers
    ;; count the frames of the signalling itself).
    (loop for line in (subseq lines 0 (or ours (length lines)))
          for i from 0
          collect (format nil "~d: ~a" i (frame-text line)))))

(defparameter *module-packages*
  '(("ASDF" . "ASDF") ("UIOP" . "ASDF")
    ("SB-POSIX" . "SB-POSIX") ("SB-INTROSPECT" . "SB-INTROSPECT")
    ("SB-BSD-SOCKETS" . "SB-BSD-SOCKETS") ("SB-CLTL2" . "SB-CLTL2")
    ("SB-CONCURRENCY" . "SB-CONCURRENCY") ("SB-ROTATE-BYTE" . "SB-ROTATE-BYTE")
    ("SB-MD5" . "SB-MD5") ("SB-SPROF" . "SB-SPROF"))
  "Packages whose module is loaded on demand when the user's code names them.")

(defun %require (module) (require module))

(defun %repl ()
  (setf *debugger-hook* nil)
  (sb-ext:enable-debugger)
  (sb-impl::toplevel-repl nil))

;;; The control socket's needs (control.lisp).

(defun %string-to-octets (text) (sb-ext:string-to-octets text :external-format :utf-8))

(defun %octets-to-string (octets)
  (sb-ext:octets-to-string octets :external-format '(:utf-8 :replacement #\?)))

(defun %unlink (path) (sb-unix:unix-unlink path))

(defun %rename (from to) (values (sb-unix:unix-rename from to)))

(defun %getuid () (sb-unix:unix-getuid))

(defun %make-thread (name function) (sb-thread:make-thread function :name name))

(defun %interrupt-thread (thread function) (sb-thread:interrupt-thread thread function))

(defun %thread-alive-p (thread) (sb-thread:thread-alive-p thread))

(defun %thread-names ()
  (mapcar (lambda (thread) (or (sb-thread:thread-name thread) "(unnamed)"))
          (sb-thread:list-all-threads)))

(defun %call-with-debugger-escape (function on-debugger)
  "Calls FUNCTION; the debugger, if it is entered (BREAK, INVOKE-DEBUGGER),
calls ON-DEBUGGER with the condition instead of ending the daemon."
  (let* ((hook (lambda (condition hook)
                 (declare (ignore hook))
                 (funcall on-debugger condition)))
         (sb-ext:*invoke-debugger-hook* hook)
         (*debugger-hook* hook))
    (funcall function)))

(defvar *gc-count* 0 "Collections since the control socket opened.")

(defun %start-gc-count ()
  (push (compile nil '(lambda () (incf *gc-count*))) sb-ext:*after-gc-hooks*))

(defun %runtime-facts ()
  (list (cons "heap-used" (princ-to-string (sb-kernel:dynamic-usage)))
        (cons "heap-limit" (princ-to-string (sb-ext:dynamic-space-size)))
        (cons "gc-count" (princ-to-string *gc-count*))
        (cons "gc-seconds" (format nil "~,3f" (/ sb-ext:*gc-run-time* internal-time-units-per-second)))))

(defun %peer-credentials (fd)
  "The pid and uid of the process at the other end of the Unix socket FD
(SO_PEERCRED), as the kernel recorded them."
  (let ((credentials (sb-alien:make-alien sb-alien:int 3))
        (length (sb-alien:make-alien sb-alien:unsigned-int 1)))
    (unwind-protect
         (progn
           (setf (sb-alien:deref length 0) 12)
           (dotimes (i 3) (setf (sb-alien:deref credentials i) -1))
           ;; getsockopt (fd, SOL_SOCKET, SO_PEERCRED, &ucred, &length),
           ;; the numbers the tool's libc gives (*PEERCRED-OPTION*).
           (if (and (zerop (sb-alien:alien-funcall
                            (sb-alien:extern-alien "getsockopt"
                                                   (function sb-alien:int sb-alien:int sb-alien:int sb-alien:int
                                                             (* sb-alien:int) (* sb-alien:unsigned-int)))
                            fd (first *peercred-option*) (second *peercred-option*) credentials length))
                    (= (sb-alien:deref length 0) 12)
                    (>= (sb-alien:deref credentials 1) 0))
               (values (sb-alien:deref credentials 0) (sb-alien:deref credentials 1))
               (values nil nil)))
      (sb-alien:free-alien credentials)
      (sb-alien:free-alien length))))

;;; :output written by the Lisp itself (a daemon without a supervisor):
;;; the standard streams write whole lines to the file or none, and a full
;;; disk drops lines instead of signalling an error in whatever thread
;;; wrote (an unhandled one ended the daemon, silently, its last line half
;;; written). Each thread's text is held until its line ends, so lines of
;;; two threads never mix; a thread's buffer is changed and written with
;;; interrupts deferred, so a handler that prints in that thread (a signal,
;;; INTERRUPT-THREAD, a timer) waits until it is consistent. Once a write
;;; works again, a line says how many were dropped and why, as the
;;; supervisor's writer says it (src/daemon/output.rs).

(defvar *keeper-aside* nil
  "True while the daemon's own line is written (%CALL-ON-OWN-LINE): its
text goes to a line of its own, not into the line its thread was writing
when a stop or a reload interrupted it.")

(defun %call-on-own-line (function)
  "Calls FUNCTION with what it writes on lines of its own."
  (let ((*keeper-aside* t))
    (funcall function)))

(defvar *line-keeper* nil
  "The line keeper of the standard streams, once made.")

(defparameter *keeper-types*
  '(progn
    (defstruct (keeper (:constructor make-keeper (fd path)))
      "What a line keeper stream writes with, shared by its interpreted and its
compiled stream (%KEEP-OUTPUT-LINES)."
      fd
      path
      ;; Each thread's text not yet written, and its own lines' (*KEEPER-ASIDE*).
      (lines (make-hash-table :test 'eq :weakness :key :synchronized t))
      (asides (make-hash-table :test 'eq :weakness :key :synchronized t))
      ;; Held while the file is written.
      (lock (sb-thread:make-mutex :name "output lines"))
      ;; Lines dropped since the last write that worked, why, and when a drop
      ;; was last logged (at most once a minute).
      (lost 0)
      (lost-why nil)
      (logged-at nil)
      ;; The buffer whose unfinished line the file ends in (a finish-output
      ;; wrote it), or NIL: another buffer's text starts on a line of its own.
      (open nil))

    (defclass line-keeper (sb-gray:fundamental-character-output-stream)
      ((keeper :initarg :keeper :reader stream-keeper)))

    (defclass compiled-line-keeper (line-keeper) ()
      (:documentation "A line keeper whose methods are compiled.")))
  "The keeper's structure and stream classes, defined when a keeper is
made (%KEEP-OUTPUT-LINES): not at every daemon's start, which defining
them slowed by a few milliseconds.")

(defconstant +longest-line+ (* 64 1024)
  "A partial line longer than this is written out anyway.")

(defun %keeper-line (keeper)
  "This thread's text not yet written (or its own lines', aside)."
  (let ((lines (if *keeper-aside* (keeper-asides keeper) (keeper-lines keeper))))
    (or (gethash sb-thread:*current-thread* lines)
        (setf (gethash sb-thread:*current-thread* lines)
              (make-array 256 :element-type 'character :adjustable t :fill-pointer 0)))))

(defun %write-whole (fd octets)
  "Writes OCTETS to FD whole or not at all: a write cut short (a full disk)
is undone, unless something else wrote to the file meanwhile (the runtime,
a child process: their lines are not cut). True, or NIL and the errno
(ENOSPC, 28, for a short write)."
  (let ((size (sb-unix:unix-lseek fd 0 sb-unix:l_xtnd))
        (end (length octets))
        (done 0)
        (errno nil))
    (loop while (< done end)
          do (multiple-value-bind (n e) (sb-unix:unix-write fd octets done (- end done))
               (if (and n (plusp n))
                   (incf done n)
                   (progn (setq errno e) (return)))))
    (cond ((= done end) t)
          (t (when (and size (plusp done)
                        (eql (sb-unix:unix-lseek fd 0 sb-unix:l_xtnd) (+ size done)))
               (sb-alien:alien-funcall
                (sb-alien:extern-alien "ftruncate" (function sb-alien:int sb-alien:int sb-alien:long))
                fd size))
             (values nil (if (and errno (plusp errno)) errno 28))))))

(defun %keeper-write (keeper text from)
  "Writes TEXT (whole lines, or a flushed part of one) from the buffer
FROM to the file, after the note of the lines dropped before it; on a line
of its own when the file ends in another buffer's unfinished line. Lines
that cannot be written are counted. Returns a line to log, when a drop
begins (at most once a minute)."
  (flet ((written (string)
           (let ((string (if (and (keeper-open keeper) (not (eq (keeper-open keeper) from)))
                             (concatenate 'string (string #\Newline) string)
                             string)))
             (multiple-value-bind (ok errno)
                 (%write-whole (keeper-fd keeper)
                               (sb-ext:string-to-octets string :external-format :utf-8))
               (if ok
                   (setf (keeper-open keeper)
                         (unless (char= (char string (1- (length string))) #\Newline) from))
                   (unless (keeper-lost-why keeper)
                     (setf (keeper-lost-why keeper) (sb-int:strerror errno))))
               ok))))
    (sb-thread:with-recursive-lock ((keeper-lock keeper))
      (unless (and (or (zerop (keeper-lost keeper))
                       (when (written (format nil "[daemonization: ~d lines of output dropped: ~a: ~a]~%"
                                              (keeper-lost keeper) (keeper-path keeper)
                                              (keeper-lost-why keeper)))
                         (setf (keeper-lost keeper) 0 (keeper-lost-why keeper) nil)
                         t))
                   (written text))
        (incf (keeper-lost keeper) (max 1 (count #\Newline text)))
        (let ((now (get-internal-real-time))
              (last (keeper-logged-at keeper)))
          (when (or (null last)
                    (< (* 60 internal-time-units-per-second) (- now last)))
            (setf (keeper-logged-at keeper) now)
            (format nil "the :output file ~a cannot be written (~a): its lines are dropped until it can"
                    (keeper-path keeper) (keeper-lost-why keeper))))))))

(defun %keeper-flush (keeper line everything)
  "Takes this thread's complete lines out of LINE (or EVERYTHING in it: a
finish-output, a line too long) and writes them. Called with interrupts
deferred; returns what %KEEPER-WRITE returns."
  (let ((end (if everything
                 (length line)
                 (let ((newline (position #\Newline line :from-end t)))
                   (if newline (1+ newline) 0)))))
    (when (plusp end)
      (let ((text (subseq line 0 end))
            (rest (- (length line) end)))
        (replace line line :start2 end)
        (setf (fill-pointer line) rest)
        (%keeper-write keeper text line)))))

(defmacro with-keeper-line ((line keeper) &body body)
  "Runs BODY on this thread's text with interrupts deferred; a drop it
reports (the value of BODY) is logged after, outside the lock."
  `(let ((to-log (sb-sys:without-interrupts
                   (let ((,line (%keeper-line ,keeper)))
                     ,@body))))
     (when (stringp to-log)
       (log-line :error to-log))))

(defun %keeper-write-char (keeper char)
  (with-keeper-line (line keeper)
    (vector-push-extend char line)
    (cond ((char= char #\Newline) (%keeper-flush keeper line nil))
          ((< +longest-line+ (length line)) (%keeper-flush keeper line t)))))

(defun %keeper-write-string (keeper string start end)
  (with-keeper-line (line keeper)
    (let* ((at (fill-pointer line))
           (size (+ at (- end start))))
      (when (< (array-dimension line 0) size)
        (adjust-array line (max size (* 2 (array-dimension line 0)))))
      (setf (fill-pointer line) size)
      (replace line string :start1 at :start2 start :end2 end)
      (cond ((< +longest-line+ size) (%keeper-flush keeper line t))
            ((find #\Newline string :start start :end end) (%keeper-flush keeper line nil))))))

(defun %keeper-finish (keeper)
  (with-keeper-line (line keeper)
    (%keeper-flush keeper line t)))

(defparameter *keeper-hot-functions*
  '(%keeper-line %write-whole %keeper-write %keeper-flush
    %keeper-write-char %keeper-write-string %keeper-finish)
  "What the keeper does for each line: compiled, with its methods, in a
thread of its own once a keeper is made (%KEEP-OUTPUT-LINES). The
bootstrap's functions are interpreted (see the top of this file), and an
interpreted keeper cost some 150 us a line, 80 times SBCL's own stream;
compiled, some 3 us. Until then the interpreted ones write.")

(defparameter *keeper-methods*
  '((defmethod sb-gray:stream-write-char ((stream line-keeper) char)
      (%keeper-write-char (stream-keeper stream) char)
      char)

    (defmethod sb-gray:stream-write-string ((stream line-keeper) string &optional (start 0) end)
      (%keeper-write-string (stream-keeper stream) string start (or end (length string)))
      string)

    (defmethod sb-gray:stream-line-column ((stream line-keeper))
      (let ((line (%keeper-line (stream-keeper stream))))
        (- (length line) (1+ (or (position #\Newline line :from-end t) -1)))))

    (defmethod sb-gray:stream-finish-output ((stream line-keeper))
      (%keeper-finish (stream-keeper stream))
      nil)

    (defmethod sb-gray:stream-force-output ((stream line-keeper))
      (%keeper-finish (stream-keeper stream))
      nil))
  "The keeper's stream methods, defined when a keeper is made.")

(defun %keeper-flush-all (keeper)
  "Writes what every thread holds (at exit, once the other threads are
ended: not what a thread still running holds), each unfinished line ended,
and logs the lines still dropped."
  (let ((lines '()))
    (dolist (table (list (keeper-lines keeper) (keeper-asides keeper)))
      (sb-ext:with-locked-hash-table (table)
        (maphash (lambda (thread line)
                   (when (or (eq thread sb-thread:*current-thread*)
                             (not (sb-thread:thread-alive-p thread)))
                     (push line lines)))
                 table)))
    (dolist (line lines)
      (when (plusp (length line))
        (unless (char= (char line (1- (length line))) #\Newline)
          (vector-push-extend #\Newline line))
        (sb-sys:without-interrupts (%keeper-flush keeper line t)))))
  (when (plusp (keeper-lost keeper))
    (log-line :error (format nil "~d lines of output were dropped before the exit: ~a: ~a"
                             (keeper-lost keeper) (keeper-path keeper) (keeper-lost-why keeper)))))

(defun %keep-output-lines (path)
  "The standard output and error streams (fd 1 and 2: the :output file
PATH) become one line keeper (what its threads hold is written at the
orderly exit, %FINISH-EXIT). Its methods are interpreted at first; a
thread compiles them (and *KEEPER-HOT-FUNCTIONS*), off the start's path,
for a stream of its own class that shares the keeper, and puts that one in
place: a writer uses one or the other, never a method being redefined."
  (dolist (stream (list sb-impl::*stdout* sb-impl::*stderr*))
    (ignore-errors (finish-output stream)))
  (eval *keeper-types*)
  (mapc #'eval *keeper-methods*)
  (let ((keeper (make-keeper 1 path)))
    (let ((stream (make-instance 'line-keeper :keeper keeper)))
      (setf *line-keeper* stream
            sb-impl::*stdout* stream
            sb-impl::*stderr* stream
            *terminal-io* (make-two-way-stream sb-impl::*stdin* stream)))
    (flet ((use (class)
             ;; Each only where it still holds the first stream: what the
             ;; daemon's code put there meanwhile stays.
             (let* ((old *line-keeper*)
                    (old-terminal *terminal-io*)
                    (stream (make-instance class :keeper keeper)))
               (setf *line-keeper* stream)
               (dolist (name '(sb-impl::*stdout* sb-impl::*stderr*))
                 (sb-ext:compare-and-swap (symbol-value name) old stream))
               (when (and (typep old-terminal 'two-way-stream)
                          (eq (two-way-stream-output-stream old-terminal) old))
                 (sb-ext:compare-and-swap (symbol-value '*terminal-io*) old-terminal
                                   (make-two-way-stream sb-impl::*stdin* stream))))))
      (sb-thread:make-thread
       (lambda ()
         (ignore-errors
          ;; The compiler's words are not the daemon's output.
          (let ((*error-output* (make-broadcast-stream))
                (*standard-output* (make-broadcast-stream)))
            (handler-bind ((warning #'muffle-warning))
              (dolist (name *keeper-hot-functions*)
                (compile name))
              (let ((sb-ext:*evaluator-mode* :compile))
                (mapc #'eval (subst 'compiled-line-keeper 'line-keeper *keeper-methods*)))
              (use 'compiled-line-keeper)))))
       :name "daemonization output compiler"))))
