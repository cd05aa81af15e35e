// The chat page. Sends with fetch and reads the answer as Server-Sent Events: `start` (the
// user's message as HTML and the answer's id), `delta` (plain text, shown as text, never as
// HTML), then `done` or `failed` (the server's rendered answer, swapped in). Also: auto-scroll
// that lets go when the reader scrolls up, copy buttons on answers and code blocks, Retry,
// Stop, older messages on demand with a stable scroll position, and errors that say what to
// do next (the alert texts are <template>s in thread_detail.html).
(function () {
  "use strict";
  const box = document.getElementById("messages");
  if (!box) return;
  const form = document.getElementById("composer");
  const textarea = document.getElementById("content");
  const sendButton = document.getElementById("send");
  const stopButton = document.getElementById("stop");
  const providerSelect = document.getElementById("provider");
  const alertBox = document.getElementById("chat-alert");
  const statusBox = document.getElementById("chat-status");
  const jumpButton = document.getElementById("jump-latest");
  const messagesUrl = box.dataset.messagesUrl;

  // ---------------------------------------------------------------- helpers

  function announce(text) {
    if (!statusBox) return;
    statusBox.textContent = "";
    window.setTimeout(() => { statusBox.textContent = text; }, 60);
  }

  function fromHTML(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function activate(node) {
    decorate(node);
    if (window.htmx) window.htmx.process(node);
    return node;
  }

  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return;
    }
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    if (!ok) throw new Error("copy refused");
  }

  function confirmCopy(button) {
    const label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    button.textContent = "Copied";
    announce("Copied to the clipboard.");
    window.setTimeout(() => { button.textContent = label; }, 1500);
  }

  // Code blocks get a header with their language and a copy button.
  function decorate(root) {
    if (!root || !root.querySelectorAll) return;
    root.querySelectorAll("[data-answer] pre.code-block").forEach((pre) => {
      if (pre.parentElement.classList.contains("code-frame")) return;
      const frame = document.createElement("div");
      frame.className = "code-frame";
      const head = document.createElement("div");
      head.className = "code-frame-head";
      const lang = document.createElement("span");
      lang.textContent = pre.dataset.lang || "text";
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.copyCode = "";
      button.textContent = "Copy";
      button.setAttribute("aria-label", "Copy " + (pre.dataset.lang && pre.dataset.lang !== "text" ? pre.dataset.lang + " " : "") + "code");
      head.append(lang, button);
      pre.replaceWith(frame);
      frame.append(head, pre);
    });
  }

  function userTextFor(article) {
    // The user message just before an answer has seq - 1.
    const seq = Number(article.dataset.seq);
    const user = box.querySelector('.message[data-role="user"][data-seq="' + (seq - 1) + '"] [data-content]');
    return user ? user.textContent : null;
  }

  // ---------------------------------------------------------------- scrolling

  let follow = true;
  let lastTop = box.scrollTop;
  const distance = () => box.scrollHeight - box.scrollTop - box.clientHeight;

  function updateJump() {
    if (jumpButton) jumpButton.hidden = follow || distance() < 160;
  }

  box.addEventListener("scroll", () => {
    // Moving up is the reader's doing (content only ever grows below): stop following.
    if (box.scrollTop < lastTop - 2) follow = false;
    else if (distance() < 48) follow = true;
    lastTop = box.scrollTop;
    updateJump();
  }, { passive: true });

  let scrollQueued = false;
  function keepDown() {
    if (!follow) { updateJump(); return; }
    if (scrollQueued) return;
    scrollQueued = true;
    window.requestAnimationFrame(() => {
      scrollQueued = false;
      if (follow) { box.scrollTop = box.scrollHeight; lastTop = box.scrollTop; }
      updateJump();
    });
  }

  function toBottom() {
    follow = true;
    box.scrollTop = box.scrollHeight;
    lastTop = box.scrollTop;
    updateJump();
  }

  if (jumpButton) jumpButton.addEventListener("click", () => { toBottom(); box.focus({ preventScroll: true }); });
  // The box shrinks when an alert or a taller composer appears: stay at the bottom if following.
  if (window.ResizeObserver) new ResizeObserver(() => keepDown()).observe(box);

  // Older messages (htmx swaps #load-older for the older page): keep what the reader was
  // looking at in place, and keep keyboard focus on the next "Load older" button.
  let restoreFromBottom = null;
  document.addEventListener("htmx:beforeSwap", (event) => {
    if (event.detail.target && event.detail.target.id === "load-older") {
      restoreFromBottom = box.scrollHeight - box.scrollTop;
    }
  });
  new MutationObserver((records) => {
    for (const record of records) record.addedNodes.forEach((node) => { if (node.nodeType === 1) decorate(node); });
    if (restoreFromBottom === null) return;
    box.scrollTop = box.scrollHeight - restoreFromBottom;
    lastTop = box.scrollTop;
    if (!document.activeElement || document.activeElement === document.body) {
      const next = document.querySelector("#load-older button");
      const target = next || box.querySelector(".message");
      if (target) target.focus({ preventScroll: true });
    }
    const pending = restoreFromBottom;
    window.setTimeout(() => { if (restoreFromBottom === pending) restoreFromBottom = null; }, 100);
  }).observe(box, { childList: true });

  decorate(box);
  if (box.querySelector(".message")) toBottom();

  // ---------------------------------------------------------------- clicks inside answers

  document.addEventListener("click", async (event) => {
    const target = event.target.closest("button");
    if (!target) return;
    const needsComposer = target.matches("[data-retry], [data-edit], [data-resend], [data-suggest]");
    if (needsComposer && !form) return;
    if (target.matches("[data-copy]")) {
      const answer = target.closest(".message").querySelector("[data-answer]");
      try { await copyText(answer.dataset.raw || answer.innerText); confirmCopy(target); } catch (e) { announce("Copying failed: select the text and copy it by hand."); }
    } else if (target.matches("[data-copy-code]")) {
      const code = target.closest(".code-frame").querySelector("pre");
      try { await copyText(code.innerText.replace(/\n$/, "")); confirmCopy(target); } catch (e) { announce("Copying failed: select the code and copy it by hand."); }
    } else if (target.matches("[data-retry]")) {
      const article = target.closest(".message");
      const content = userTextFor(article);
      if (content === null) { showAlert("default", "The message to retry is not on the page any more: copy it into the box and send it."); return; }
      target.disabled = true;
      if (!(await send(content))) target.disabled = false;
    } else if (target.matches("[data-pick-provider]")) {
      pickProvider(target.closest(".message"));
    } else if (target.matches("[data-edit]")) {
      const article = target.closest(".message");
      const content = article ? userTextFor(article) : null;
      if (textarea) {
        if (content !== null && !textarea.value.trim()) textarea.value = content;
        autosize();
        textarea.focus();
      }
    } else if (target.matches("[data-resend]")) {
      send(lastContent !== null ? lastContent : textarea.value);
    } else if (target.matches("[data-reload]")) {
      window.location.reload();
    } else if (target.matches("[data-suggest]")) {
      textarea.value = target.dataset.suggest;
      send(textarea.value);
    }
  });

  function pickProvider(article) {
    if (!providerSelect) return;
    const content = article ? userTextFor(article) : null;
    if (content !== null && textarea && !textarea.value.trim()) { textarea.value = content; autosize(); }
    providerSelect.focus();
    providerSelect.scrollIntoView({ block: "nearest" });
    announce("Choose another provider in the list, then send the message again.");
  }

  // An answer still being written when the page loaded (a reload mid-answer): poll until done.
  function pollUntilDone(article, attempts) {
    if (!messagesUrl || !article.id) return;
    const id = article.id.replace("message-", "");
    window.setTimeout(async () => {
      if (!article.isConnected) return;
      try {
        const response = await fetch(messagesUrl + id + "/", { credentials: "same-origin" });
        if (response.ok) {
          const fresh = fromHTML(await response.text());
          if (fresh && fresh.matches(".message") && fresh.dataset.status !== "streaming") {
            article.replaceWith(activate(fresh));
            keepDown();
            return;
          }
        }
      } catch (e) { /* try again below */ }
      if (attempts > 0) pollUntilDone(article, attempts - 1);
    }, 1500);
  }
  box.querySelectorAll('.message[data-status="streaming"]').forEach((article) => pollUntilDone(article, 80));

  // ---------------------------------------------------------------- rename

  // A rename swaps the heading (the title and its Rename form) for the server's: the form stays
  // open with the reason when the title was refused, and closes when it was saved. Keep the
  // keyboard focus there rather than lose it with the old form.
  document.addEventListener("htmx:afterSwap", (event) => {
    const heading = event.target;
    if (heading.id !== "thread-heading") return;
    if (heading.querySelector("#rename-error")) {
      heading.querySelector("#rename").focus();
      return;
    }
    document.title = heading.querySelector("#thread-title").textContent + " · DAC";
    if (!document.activeElement || document.activeElement === document.body) heading.querySelector("summary").focus();
  });

  if (!form) return; // an archived thread: read-only

  // ---------------------------------------------------------------- alerts

  function showAlert(kind, message, tone) {
    const template = document.getElementById("alert-" + kind) || document.getElementById("alert-default");
    const wrapper = document.createElement("div");
    wrapper.className = "alert " + (tone === "warning" ? "alert-warning" : "alert-error");
    wrapper.dataset.alert = kind;
    wrapper.appendChild(template.content.cloneNode(true));
    const slot = wrapper.querySelector('[data-slot="message"]');
    if (slot) slot.textContent = message || "";
    alertBox.replaceChildren(wrapper);
    return wrapper;
  }

  function clearAlert() { alertBox.replaceChildren(); }

  function retryAt(header) {
    if (!header) return null;
    const seconds = Number(header);
    if (Number.isFinite(seconds)) return new Date(Date.now() + seconds * 1000);
    const when = new Date(header);
    return isNaN(when.getTime()) ? null : when;
  }

  function localTime(when) {
    if (window.dacFormatLocal) return window.dacFormatLocal(when);
    return when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  async function showHttpError(response) {
    let code = null;
    let message = null;
    if ((response.headers.get("Content-Type") || "").includes("json")) {
      try {
        const data = await response.json();
        code = data.error.code;
        message = data.error.message;
      } catch (e) { /* not our JSON */ }
    }
    if (!code) {
      if (response.status === 401) return showAlert("not_authenticated");
      if (response.status === 403) return showAlert("stale");
      // Django refuses a body over DATA_UPLOAD_MAX_MEMORY_SIZE (a huge paste) before the view
      // can say how long the message is; trying again as it is would fail the same way.
      if (response.status === 400 || response.status === 413) {
        textarea.focus();
        return showAlert("validation_error", "DAC could not read this message (HTTP " + response.status + "). If it is very long, shorten it, then send it again.");
      }
      return showAlert("default", "Something went wrong on DAC's side (HTTP " + response.status + "). Try again in a moment.");
    }
    if (code === "not_authenticated") return showAlert("not_authenticated");
    const alert = showAlert(code, message);
    if (code === "quota_exceeded") {
      const when = retryAt(response.headers.get("Retry-After"));
      if (when) {
        alert.querySelector('[data-slot="reset-time"]').textContent = localTime(when);
        alert.querySelector('[data-slot="reset"]').hidden = false;
      }
    }
    if (code === "validation_error") textarea.focus();
    return alert;
  }

  // ---------------------------------------------------------------- composer

  function autosize() {
    textarea.style.height = "auto";
    textarea.style.height = Math.min(textarea.scrollHeight + 2, 240) + "px";
  }
  textarea.addEventListener("input", autosize);
  if (window.matchMedia("(pointer: fine)").matches && !location.hash) textarea.focus({ preventScroll: true });

  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (busy) announce("An answer is still being written: wait for it, or stop it with Escape.");
      else form.requestSubmit();
    } else if (event.key === "Escape" && current) {
      event.preventDefault();
      stop();
    }
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send(textarea.value);
  });

  stopButton.addEventListener("click", stop);

  let busy = false;
  let current = null; // the answer being streamed: { id, node, stopping }
  let lastContent = null;

  function setBusy(value) {
    busy = value;
    sendButton.disabled = value;
    box.setAttribute("aria-busy", value ? "true" : "false");
    if (!value) {
      const hadFocus = document.activeElement === stopButton;
      current = null;
      stopButton.hidden = true;
      stopButton.disabled = false;
      stopButton.lastChild.textContent = "Stop";
      sendButton.hidden = false;
      if (hadFocus) textarea.focus();
    }
  }

  function showStop() {
    const hadFocus = document.activeElement === sendButton;
    sendButton.hidden = true;
    stopButton.hidden = false;
    if (hadFocus) stopButton.focus();
  }

  async function stop() {
    if (!current || current.stopping) return;
    const answer = current;
    answer.stopping = true;
    stopButton.disabled = true;
    stopButton.lastChild.textContent = "Stopping…";
    try {
      const response = await fetch(form.action + answer.id + "/stop/", {
        method: "POST",
        headers: { "X-CSRFToken": csrfToken() },
        credentials: "same-origin",
      });
      if (!response.ok) throw new Error("HTTP " + response.status);
    } catch (error) {
      if (current !== answer) return; // it finished meanwhile: nothing to stop
      answer.stopping = false;
      stopButton.disabled = false;
      stopButton.lastChild.textContent = "Stop";
      showAlert("stop_failed", error.message, "warning");
    }
  }

  function parseEvents(buffer, onEvent) {
    let index;
    while ((index = buffer.search(/\r?\n\r?\n/)) !== -1) {
      const raw = buffer.slice(0, index);
      buffer = buffer.slice(index).replace(/^\r?\n\r?\n/, "");
      let name = "message";
      const data = [];
      for (const line of raw.split(/\r?\n/)) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) {
        let payload;
        try { payload = JSON.parse(data.join("\n")); } catch (e) { continue; }
        onEvent(name, payload);
      }
    }
    return buffer;
  }

  // The server titles an untitled thread after its first message; show that title at once.
  function nameThread(userNode) {
    const heading = document.getElementById("thread-title");
    const content = userNode.querySelector("[data-content]");
    if (!heading || !heading.hasAttribute("data-untitled") || !content) return;
    const line = content.textContent.split(/\s+/).filter(Boolean).join(" ");
    const title = line.length > 80 ? line.slice(0, 77) + "…" : line;
    heading.textContent = title;
    heading.removeAttribute("data-untitled");
    document.title = title + " · DAC";
    const rename = document.getElementById("rename");
    if (rename && !rename.value) rename.value = title;
  }

  function placeholder(id) {
    const node = document.getElementById("tpl-assistant").content.firstElementChild.cloneNode(true);
    node.id = "message-" + id;
    return node;
  }

  // Returns whether the message was accepted (an answer started streaming).
  async function send(content) {
    if (busy) return false;
    if (!content || !content.trim()) {
      showAlert("validation_error", "Write a message first.");
      textarea.focus();
      return false;
    }
    clearAlert();
    setBusy(true);
    lastContent = content;
    const hint = document.getElementById("empty-hint");
    if (hint) hint.remove();
    const body = new FormData(form);
    body.set("content", content);
    let response;
    try {
      response = await fetch(form.action, {
        method: "POST",
        body: body,
        headers: { Accept: "text/event-stream" },
        credentials: "same-origin",
      });
    } catch (error) {
      showAlert("network");
      setBusy(false);
      return false;
    }
    if (!response.ok) {
      await showHttpError(response);
      setBusy(false);
      return false;
    }
    if (textarea.value === content) { textarea.value = ""; autosize(); }
    toBottom();
    await readAnswer(response);
    return true;
  }

  async function readAnswer(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let finished = false;
    let textNode = null;
    const handle = (name, data) => {
      if (name === "start") {
        const userNode = activate(fromHTML(data.user_html));
        box.appendChild(userNode);
        nameThread(userNode);
        const node = placeholder(data.assistant_id);
        box.appendChild(node);
        current = { id: data.assistant_id, node: node, stopping: false };
        showStop();
        announce("The assistant is writing.");
      } else if (name === "delta" && current) {
        const answer = current.node.querySelector("[data-answer]");
        if (!textNode) {
          answer.replaceChildren();
          answer.classList.add("whitespace-pre-wrap", "streaming-cursor");
          textNode = document.createTextNode("");
          answer.appendChild(textNode);
        }
        textNode.appendData(data.text);
      } else if ((name === "done" || name === "failed") && current) {
        finished = true;
        const fresh = activate(fromHTML(data.html));
        current.node.replaceWith(fresh);
        if (name === "done") announce(fresh.querySelector("[data-stopped]") ? "The answer was stopped." : "The answer is complete.");
      }
      keepDown();
    };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer = parseEvents(buffer + decoder.decode(value, { stream: true }), handle);
      }
    } catch (error) { /* the connection dropped: handled below */ }
    if (!finished) {
      showAlert("dropped", null, "warning");
      if (current) pollUntilDone(current.node, 80);
    }
    setBusy(false);
    keepDown();
  }
})();
