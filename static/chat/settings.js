// A conversation's settings under way (model, thinking, system prompt: the next
// answer uses them) and the "context used" meter by the composer. The dialog's
// markup is chat.html's; this only opens it, saves it and fills the meter.

import { postForm } from "./browser.js";
import { format, gettext } from "./i18n.js";
import { formatInt, toast } from "./ui.js";

export function initSettings() {
  const dialog = document.getElementById("conv-settings");
  const open = document.getElementById("settings-btn");
  if (!dialog || !open || typeof dialog.showModal !== "function") return;
  const form = dialog.querySelector("form");
  const error = dialog.querySelector(".settings-error");
  open.addEventListener("click", () => {
    error.hidden = true;
    dialog.showModal();
  });
  dialog.querySelector('[data-action="settings-cancel"]').addEventListener("click", () => dialog.close());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = Object.fromEntries(new FormData(form).entries());
    try {
      const data = await postForm(form.action, fields);
      modelShow(data);
      dialog.close();
      toast(format(gettext("The next answer uses %(model)s."), { model: data.model_label || data.model }));
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    }
  });
}

/** The model of the next answer, from this tab's save or another tab's
 * (`conversation.updated`): the header's badge, the dialog's choice, the meter's window. */
export function modelShow(data) {
  if (!data || !data.model) return;
  const badge = document.getElementById("model-badge");
  if (badge) badge.textContent = data.model_label || data.model;
  const select = document.querySelector('#conv-settings select[name="model"]');
  if (select && [...select.options].some((option) => option.value === data.model)) select.value = data.model;
  const meter = document.getElementById("context-meter");
  if (meter && data.context_window) meter.dataset.window = String(data.context_window);
}

/** After an answer: how much of the model's context window its prompt and text filled. */
export function contextMeterUpdate(frame) {
  const meter = document.getElementById("context-meter");
  const usage = frame && frame.usage;
  if (!meter || !usage) return;
  const used =
    (usage.input_tokens || 0) + (usage.cache_read_tokens || 0) + (usage.cache_write_tokens || 0) +
    (usage.output_tokens || 0);
  const window = Number(meter.dataset.window) || 0;
  if (!window) return;
  const percent = Math.min(100, Math.round((used * 100) / window));
  meter.hidden = false;
  meter.querySelector("progress").value = percent;
  // Translators: the share of the model's context window used, as "42% of context" ("<1" under one per cent).
  meter.querySelector(".meter-text").textContent = format(gettext("%(percent)s% of context"), { percent: percent || "<1" });
  meter.title = format(gettext("%(used)s of %(window)s tokens of the model's context window used"), {
    used: formatInt(used),
    window: formatInt(window),
  });
}
