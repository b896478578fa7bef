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

(defgroup daemonization nil
  "Lisp daemons run by the daemonization tool."
  :group 'slime)

(defcustom daemonization-program "daemonization"
  "The daemonization tool."
  :type 'string)

;; The connection goes through the tool's relay, `daemonization CONF
;; swank': it makes every check `eval' makes (the daemon's own Lisp serves
;; the control socket, opened without following a link) and offers the
;; connection on a socket of the caller's own, in a fresh 0700 directory,
;; whose path it prints; it takes one connection, of the caller's uid.
;; Emacs never connects to a path the daemon's user could point elsewhere.

(defun daemonization--relay (conf)
  "A SLIME connection to the daemon of CONF, through the tool's relay."
  (let* ((errors (get-buffer-create " *daemonization-swank*"))
         (said "")
         (relay (progn
                  (with-current-buffer errors (erase-buffer))
                  (make-process :name "daemonization swank"
                                :command (list daemonization-program
                                               (expand-file-name conf) "swank")
                                :connection-type 'pipe
                                :noquery t
                                :stderr errors
                                :filter (lambda (_process text)
                                          (setq said (concat said text)))))))
    (with-timeout (120 (delete-process relay)
                       (error "The daemon of %s did not answer" conf))
      (while (not (string-search "\n" said))
        (unless (process-live-p relay)
          (error "daemonization swank: %s"
                 (string-trim (with-current-buffer errors (buffer-string)))))
        (accept-process-output relay 0.1)))
    (make-network-process :name "SLIME Lisp" :family 'local
                          :service (string-trim said) :coding 'binary)))

;;;###autoload
(defun daemonization-slime (conf)
  "Connect SLIME to the running daemon of the conf file CONF."
  (interactive "fConf file of the daemon: ")
  (require 'slime)
  (cl-letf (((symbol-function 'open-network-stream)
             (lambda (&rest _) (daemonization--relay conf)))
            ;; The socket is the daemon's user's: no secret is sent.
            ((symbol-function 'slime-send-secret) #'ignore))
    (slime-connect "daemonization" 0)))

(provide 'daemonization)
;;; daemonization.el ends here
