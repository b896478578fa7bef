;;;; The ECL prelude of the bootstrap: what ECL does its own way (the
;;;; shared defaults, prelude-common.lisp, give the rest).

(defparameter *utf-8* :utf-8
  "The UTF-8 external format, as this Lisp names it.")

(defun %save-core (path)
  (declare (ignore path))
  (error "ECL cannot save its image: it has no saved cores"))

(defun %getpid () (ext:getpid))

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

(defun %install-stop-handlers (stop with-sigint)
  (ext:set-signal-handler ext:+sigusr1+ (lambda () (funcall stop 10)))
  (ext:set-signal-handler ext:+sigterm+ (lambda () (funcall stop 15)))
  (when with-sigint
    (ext:set-signal-handler ext:+sigint+ (lambda () (funcall stop 2)))))

(defun %install-reload-handler (reload)
  ;; No siginfo here: the verdict carries 0, not the number reload sent.
  (ext:set-signal-handler ext:+sighup+ (lambda () (funcall reload 0))))

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

(defun %repl ()
  (setf *debugger-hook* nil)
  (si::top-level))

;;; The control socket's needs (control.lisp), through ECL's dynamic FFI
;;; (its interpreter cannot compile C).

(defun %c (name returning types &rest args)
  (si:call-cfun (si:find-foreign-symbol name :default :pointer-void 0) returning types args))

(defun %string-to-octets (text)
  "TEXT as UTF-8 (this ECL has no encoder the interpreter can call)."
  (let ((out (make-array (length text) :element-type '(unsigned-byte 8)
                                       :adjustable t :fill-pointer 0)))
    (loop for c across text
          for code = (char-code c)
          do (flet ((put (b) (vector-push-extend b out)))
               (cond ((< code #x80) (put code))
                     ((< code #x800)
                      (put (logior #xc0 (ash code -6)))
                      (put (logior #x80 (logand code #x3f))))
                     ((< code #x10000)
                      (put (logior #xe0 (ash code -12)))
                      (put (logior #x80 (logand (ash code -6) #x3f)))
                      (put (logior #x80 (logand code #x3f))))
                     (t
                      (put (logior #xf0 (ash code -18)))
                      (put (logior #x80 (logand (ash code -12) #x3f)))
                      (put (logior #x80 (logand (ash code -6) #x3f)))
                      (put (logior #x80 (logand code #x3f)))))))
    out))

(defun %octets-to-string (octets)
  "UTF-8 OCTETS as a string; a malformed sequence reads as ?."
  (with-output-to-string (out)
    (let ((i 0) (n (length octets)))
      (loop while (< i n)
            do (let* ((b (aref octets i))
                      (extra (cond ((< b #x80) 0) ((= (logand b #xe0) #xc0) 1)
                                   ((= (logand b #xf0) #xe0) 2) ((= (logand b #xf8) #xf0) 3)
                                   (t nil))))
                 (if (or (null extra) (> (+ i extra) (1- n))
                         (loop for k from 1 to extra
                               thereis (/= (logand (aref octets (+ i k)) #xc0) #x80)))
                     (progn (write-char #\? out) (incf i))
                     (let ((code (if (zerop extra) b (logand b (ash #x3f (- extra))))))
                       (loop for k from 1 to extra
                             do (setf code (logior (ash code 6) (logand (aref octets (+ i k)) #x3f))))
                       (write-char (or (ignore-errors (code-char code)) #\?) out)
                       (incf i (1+ extra)))))))))

(defun %unlink (path) (%c "unlink" :int '(:cstring) path))

(defun %rename (from to) (zerop (%c "rename" :int '(:cstring :cstring) from to)))

(defun %getuid () (%c "getuid" :int '()))

(defun %make-thread (name function) (mp:process-run-function name function))

(defun %interrupt-thread (thread function) (mp:interrupt-process thread function))

(defun %thread-alive-p (thread) (mp:process-active-p thread))

(defun %thread-names ()
  (mapcar (lambda (process) (princ-to-string (mp:process-name process))) (mp:all-processes)))

(defun %call-with-debugger-escape (function on-debugger)
  (let* ((hook (lambda (condition hook)
                 (declare (ignore hook))
                 (funcall on-debugger condition)))
         (ext:*invoke-debugger-hook* hook)
         (*debugger-hook* hook))
    (funcall function)))

(defun %start-gc-count ())

(defun %runtime-facts ()
  ;; ECL's collector (Boehm's) keeps no counts the interpreter can read.
  '())

(defun %peer-credentials (fd)
  (let ((credentials (ffi:allocate-foreign-object :int 3))
        (length (ffi:allocate-foreign-object :int 1)))
    (unwind-protect
         (progn
           (setf (ffi:deref-array length '(:array :int 1) 0) 12)
           (dotimes (i 3) (setf (ffi:deref-array credentials '(:array :int 3) i) -1))
           (if (and (zerop (%c "getsockopt" :int '(:int :int :int :pointer-void :pointer-void)
                               fd (first *peercred-option*) (second *peercred-option*)
                               credentials length))
                    (= (ffi:deref-array length '(:array :int 1) 0) 12)
                    (>= (ffi:deref-array credentials '(:array :int 3) 1) 0))
               (values (ffi:deref-array credentials '(:array :int 3) 0)
                       (ffi:deref-array credentials '(:array :int 3) 1))
               (values nil nil)))
      (ffi:free-foreign-object credentials)
      (ffi:free-foreign-object length))))
