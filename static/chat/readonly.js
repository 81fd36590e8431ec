// The composer's stand-in on a conversation shared with you read-only: there is
// nothing to send, so it only shows errors (docs/browser.md). The page still
// opens the socket and watches every answer stream in.

export class ReadOnlyComposer {
  constructor() {
    this.errorBox = document.getElementById("composer-error");
    this.button = document.getElementById("continue-btn");
  }

  start() {}
  update() {}
  reconnected() {}
  confirmed() {}
  refused(_entry, message) {
    this.showError(message);
  }
  attachmentUpdated() {}
  attachmentDeleted() {}
  budget() {}

  showError(message) {
    if (!this.errorBox) return;
    this.errorBox.textContent = message || "";
    this.errorBox.hidden = !message;
  }

  /** The share ended or the conversation went: the copy can no longer be made. */
  disable() {
    if (this.button) this.button.disabled = true;
  }
}
