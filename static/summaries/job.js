// A summary job's page: live progress over its websocket (`job.progress`
// frames, docs/summaries.md), counts and a bar; when the job ends, a link to
// reload the page with its summaries. Reconnects with the chat's own socket.

import { gettext } from "../chat/i18n.js";
import { CLOSE_ACCESS_REVOKED, ChatSocket } from "../chat/socket.js";

const COUNTS = ["submitted", "processing", "succeeded", "errored", "expired", "canceled"];

function show(root, frame) {
  const text = (id, value) => {
    const el = document.getElementById(id);
    if (el) el.textContent = String(value);
  };
  const cancelling = frame.cancel_requested && !frame.ended;
  text("job-status", cancelling ? `${frame.status_label} ${gettext("(cancelling)")}` : frame.status_label);
  text("job-percent", frame.percent);
  text("job-cost", frame.cost_display);
  for (const name of COUNTS) text(`count-${name}`, frame[name]);
  const bar = document.getElementById("job-bar");
  if (bar) {
    bar.max = frame.total;
    bar.value = frame.succeeded + frame.errored + frame.expired + frame.canceled;
    bar.textContent = `${frame.percent}%`;
  }
  if (frame.ended) {
    document.getElementById("job-cancel-form")?.remove();
    const reload = document.getElementById("job-reload");
    if (reload && root.dataset.endedAtLoad !== "1") reload.hidden = false;
  }
}

const root = document.getElementById("summary-job");
if (root) {
  const socket = new ChatSocket({
    path: root.dataset.wsPath,
    status: null,
    onOpen: () => {},
    onFrame: (frame) => {
      if (frame.type === "job.progress") show(root, frame);
    },
    onEnd: (code) => {
      if (code === CLOSE_ACCESS_REVOKED) window.location.reload();
    },
  });
  socket.start();
}
