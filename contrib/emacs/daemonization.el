;;; daemonization.el --- connect SLIME to a daemon of daemonization  -*- lexical-binding: t -*-

;; Connects SLIME to a running daemon through its control socket: a Unix
;; socket only root and the daemon's user can reach (the daemon checks the
;; kernel's word on every peer), so no TCP port is opened for anyone on
;; the machine to run code with the daemon's power.
;;
;; Use: M-x daemonization-slime RET /etc/daemonization/site.conf RET
;; as the daemon's user or root.  The daemon loads swank on the first
;; connection if it is not loaded (Debian: cl-swank; or :preload (:swank)).

;;; Code:

(require 'cl-lib)
(require 'json)

(defgroup daemonization nil
  "Lisp daemons run by the daemonization tool."
  :group 'slime)

(defcustom daemonization-program "daemonization"
  "The daemonization tool."
  :type 'string)

(defun daemonization-control-socket (conf)
  "The control socket of the daemon of CONF, as `status -v' tells it."
  (with-temp-buffer
    (let ((code (call-process daemonization-program nil (list t nil) nil
                              "--print" "json" (expand-file-name conf) "status" "-v")))
      (goto-char (point-min))
      (let* ((status (ignore-errors (json-read)))
             (socket (cdr (assq 'control-socket status))))
        (cond ((not (memq code '(0))) (error "The daemon of %s is not running" conf))
              ((not socket) (error "The daemon of %s has no control socket" conf))
              (t socket))))))

(defun daemonization--open (path)
  "A connection to the control socket PATH, turned into a swank one: the
daemon's greeting line is read and dropped before SLIME takes it."
  (let* ((greeting "")
         (process (make-network-process
                   :name "SLIME Lisp" :family 'local :service path
                   :coding 'binary
                   :filter (lambda (_process text) (setq greeting (concat greeting text))))))
    (process-send-string process "swank\n")
    (with-timeout (10 (delete-process process)
                      (error "The daemon at %s did not answer" path))
      (while (not (string-search "\n" greeting))
        (accept-process-output process 0.1)))
    (unless (string-prefix-p "hello " greeting)
      (delete-process process)
      (error "Not a daemon's control socket: %s" path))
    (set-process-filter process nil)
    process))

;;;###autoload
(defun daemonization-slime (conf)
  "Connect SLIME to the running daemon of the conf file CONF."
  (interactive "fConf file of the daemon: ")
  (require 'slime)
  (let ((path (daemonization-control-socket conf)))
    (cl-letf (((symbol-function 'open-network-stream)
               (lambda (&rest _) (daemonization--open path)))
              ;; The socket is the daemon's user's: no secret is sent.
              ((symbol-function 'slime-send-secret) #'ignore))
      (slime-connect "daemonization" 0))))

(provide 'daemonization)
;;; daemonization.el ends here
