// Team chat in the browser: native ES modules, served as they are (no build
// step; docs/browser.md). This one wires the others together. Every page
// loads it; each part starts only if its elements are on the page.

import { Composer, initNewChat } from "./composer.js";
import { gettext } from "./i18n.js";
import { STOP_EVENT, initKeys } from "./keys.js";
import { Outbox } from "./outbox.js";
import { ReadOnlyComposer } from "./readonly.js";
import {
  SIGNED_OUT_EVENT,
  applyTitle,
  disableHeader,
  flashNext,
  forgetConversation,
  initHeader,
  initShell,
  removeFromSidebar,
} from "./shell.js";
import { initSearch } from "./search.js";
import { initSidebar } from "./sidebar.js";
import { contextMeterUpdate, initSettings, modelShow } from "./settings.js";
import { CLOSE_ACCESS_REVOKED, ChatSocket } from "./socket.js";
import { Thread } from "./thread.js";

// After a deletion, the notice stays this long before the page goes home.
const DELETED_REDIRECT_MS = 1500;
// A `not_found` (a resume for a reply that is gone) is worth a word only this
// soon after the person did something.
const RECENT_ACTION_MS = 3000;

class ChatPage {
  constructor(root) {
    this.root = root;
    this.conversationId = root.dataset.conversationId;
    this.lastUserActionAt = 0;
    const onUserAction = () => {
      this.lastUserActionAt = Date.now();
    };
    const send = (frame) => this.socket.send(frame);
    this.thread = new Thread(root, {
      send,
      onChange: () => this.composer.update(),
      showError: (message) => this.composer.showError(message),
      onUserAction,
    });
    this.outbox = new Outbox(this.conversationId);
    // Shared with you read-only: watch, send nothing (the server would refuse it).
    this.composer = root.dataset.readOnly
      ? new ReadOnlyComposer()
      : new Composer(root, { thread: this.thread, outbox: this.outbox, send, onUserAction });
    this.socket = new ChatSocket({
      path: root.dataset.wsPath,
      status: document.getElementById("conn-status"),
      onOpen: () => this.onOpen(),
      onFrame: (frame) => this.onFrame(frame),
      onEnd: (code) => (code === CLOSE_ACCESS_REVOKED ? this.accessRevoked() : this.conversationDeleted()),
    });
  }

  start() {
    // A rename or delete that found the session gone ends the chat as a 4403 would.
    document.addEventListener(SIGNED_OUT_EVENT, () => this.accessRevoked());
    // Esc anywhere on the page stops the answer being written (keys.js).
    document.addEventListener(STOP_EVENT, () => {
      const active = this.thread.activeReply();
      if (active && !this.composer.disabled) this.composer.stop(active);
    });
    this.thread.start();
    this.composer.start();
    this.thread.scrollToBottom(true);
    this.thread.revealFound(window.location.hash);
    this.thread.watchQuiet();
    this.socket.start();
  }

  /** Every (re)open: resumes first, then every send not yet confirmed by both its messages. */
  onOpen() {
    this.thread.resumeAll();
    if (!this.root.dataset.readOnly) for (const frame of this.outbox.frames()) this.socket.send(frame);
    this.composer.reconnected();
  }

  onFrame(frame) {
    switch (frame.type) {
      case "message.created": {
        const payload = frame.message || {};
        this.thread.created(payload);
        const confirmed = this.outbox.created(payload);
        if (confirmed) this.composer.confirmed(confirmed);
        this.composer.update();
        break;
      }
      case "message.delta":
        this.thread.delta(frame);
        break;
      case "message.snapshot":
        this.thread.snapshot(frame);
        break;
      case "message.completed":
        this.thread.completed(frame);
        contextMeterUpdate(frame);
        break;
      case "message.deleted":
        this.thread.deleted(frame);
        break;
      case "message.condensed":
        this.thread.condensed(frame);
        break;
      case "branch.switched":
        this.thread.branchSwitched(frame);
        this.composer.update();
        break;
      case "conversation.updated":
        if (frame.conversation_id && frame.title) applyTitle(frame.conversation_id, frame.title);
        if (frame.conversation_id === this.conversationId) modelShow(frame);
        break;
      case "conversation.deleted":
        if (frame.conversation_id === this.conversationId) this.conversationDeleted();
        else if (frame.conversation_id) removeFromSidebar(frame.conversation_id);
        break;
      case "error":
        this.onError(frame);
        break;
      case "attachment.updated":
        this.composer.attachmentUpdated(frame.attachment);
        break;
      case "attachment.deleted":
        this.composer.attachmentDeleted(frame.attachment_id);
        this.thread.attachmentDeleted(frame.attachment_id);
        break;
      case "budget.status":
        this.composer.budget(frame);
        break;
      case "pong":
      default:
        break;
    }
  }

  onError(frame) {
    const refused = frame.client_id ? this.outbox.refused(frame.client_id) : null;
    if (refused) {
      this.composer.refused(refused, frame.message);
      return;
    }
    if (frame.code === "not_found" && Date.now() - this.lastUserActionAt > RECENT_ACTION_MS) return;
    this.composer.showError(frame.message || gettext("Something went wrong."));
  }

  /** Closed with 4403: signed out, deactivated, password changed, or no longer allowed here. */
  accessRevoked() {
    if (this.signedOut) return;
    this.signedOut = true;
    this.end(gettext("You are signed out: sign in again to retry."));
    disableHeader();
    this.showNotice("notice-signed-out");
  }

  /** `conversation.deleted` (or a close with 4404): deleted in another tab or by someone else. */
  conversationDeleted() {
    if (this.deleted) return;
    this.deleted = true;
    this.end(gettext("This conversation was deleted."));
    removeFromSidebar(this.conversationId);
    forgetConversation(this.conversationId);
    const notice = this.showNotice("notice-deleted");
    flashNext(gettext("This conversation was deleted."));
    const home = notice?.querySelector("a")?.href || "/";
    setTimeout(() => window.location.assign(home), DELETED_REDIRECT_MS);
  }

  /** Nothing more can be written here: `why` is what a control that is still clicked says. */
  end(why) {
    this.socket.end();
    this.thread.end(why);
    this.composer.disable();
  }

  showNotice(id) {
    const notice = document.getElementById(id);
    if (notice) notice.hidden = false;
    this.thread.followBottom();
    return notice;
  }
}

function main() {
  // Before the shell's: its Esc closes the user menu, which must not also stop an answer.
  initKeys({ homeUrl: document.querySelector(".new-chat")?.getAttribute("href") || "/" });
  initShell();
  initSidebar();
  initSearch();
  initNewChat();
  initHeader();
  initSettings();
  const root = document.getElementById("chat");
  if (root && root.dataset.wsPath) {
    const page = new ChatPage(root);
    page.start();
    window.__chatPage = page; // for debugging in the console
  }
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main);
else main();
