;;;; The shared defaults of the preludes, read after the prelude of the
;;;; Lisp that runs (which defines only what it does its own way): each
;;;; function here is defined only if that prelude did not define it.

(defmacro define-default (name lambda-list &body body)
  "Defines NAME as a default: unless the Lisp's own prelude defined it."
  `(unless (fboundp ',name)
     (defun ,name ,lambda-list ,@body)))

(defvar *module-packages*
  '(("ASDF" . "asdf") ("UIOP" . "asdf"))
  "Packages whose module is loaded on demand when the user's code names them.")

(define-default %require (module)
  (require (string-downcase module)))

(define-default %user-evaluation ())

(define-default %call-on-own-line (function)
  (funcall function))

(define-default %keep-output-lines (path)
  ;; Only SBCL's standard streams keep whole lines (prelude-sbcl.lisp).
  (declare (ignore path)))

(define-default %directory-pathname (namestring)
  (pathname namestring))

(define-default %directory-truename (dir)
  (let ((true (ignore-errors (probe-file dir))))
    (and true (null (pathname-name true)) true)))

(define-default %native-namestring (path)
  (namestring path))

(define-default %collect-garbage ()
  ;; Only SBCL settles its heap before it is ready: the others' collectors
  ;; neither move objects nor give memory back.
  nil)

(define-default %socket-of-fd (fd family)
  ;; SBCL and ECL: an SB-BSD-SOCKETS socket on a descriptor it was given.
  (%require "SB-BSD-SOCKETS")
  (make-instance (find-symbol (if (eq family :inet6) "INET6-SOCKET" "INET-SOCKET") "SB-BSD-SOCKETS")
                 :type :stream :protocol :tcp :descriptor fd))

(define-default %close-ready-fd (fd)
  ;; Closing the readiness stream closed FD itself (SBCL, ECL): `status`
  ;; sees a daemon whose FD is closed as ready.
  (declare (ignore fd)))

(define-default %set-cloexec (fd)
  ;; Without a portable fcntl: the descriptors stay inheritable by the
  ;; Lisp's own children (see README).
  (declare (ignore fd)))

(define-default %drain (fd)
  ;; Without fcntl: a verdict nobody reads stays in the pipe.
  (declare (ignore fd)))

(define-default %wait-for-stop (stop)
  "Sleeps until a stop signal's handler ends the Lisp."
  (declare (ignore stop))
  (loop (sleep 3600)))

(define-default %install-debugger-hook (hook)
  (setf *debugger-hook* hook))

(define-default %thread-description ()
  "the main thread")
