// The chat page: send with fetch, read the SSE answer as it streams, swap in the server's
// rendered HTML when it is done. Deltas are shown as plain text (never as HTML).
(function () {
  const form = document.getElementById("composer");
  if (!form) return;
  const box = document.getElementById("messages");
  const textarea = document.getElementById("content");
  const sendButton = document.getElementById("send");
  const alertBox = document.getElementById("chat-alert");
  let followBottom = true;

  box.addEventListener("scroll", () => {
    followBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  });
  const scrollDown = () => { if (followBottom) box.scrollTop = box.scrollHeight; };
  scrollDown();

  function showAlert(message) {
    alertBox.textContent = message;
    alertBox.className = "mt-2 alert alert-error";
  }
  function clearAlert() { alertBox.className = "mt-2 hidden"; alertBox.textContent = ""; }
  function setBusy(busy) {
    sendButton.disabled = busy;
    textarea.disabled = busy;
    box.setAttribute("aria-busy", busy ? "true" : "false");
  }
  function insertHTML(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    const node = template.content.firstElementChild;
    box.appendChild(node);
    if (window.htmx) htmx.process(node);
    return node;
  }
  function replaceWith(node, html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    const fresh = template.content.firstElementChild;
    node.replaceWith(fresh);
    if (window.htmx) htmx.process(fresh);
    return fresh;
  }

  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  box.addEventListener("click", (event) => {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    const answer = button.closest(".message").querySelector("[data-answer]");
    navigator.clipboard.writeText(answer ? answer.innerText : "").then(() => {
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    });
  });

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
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
    return buffer;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const content = textarea.value;
    if (!content.trim()) { showAlert("Write a message first."); return; }
    clearAlert();
    setBusy(true);
    const hint = document.getElementById("empty-hint");
    if (hint) hint.remove();
    let assistantNode = null;
    let answerText = "";
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        headers: { Accept: "text/event-stream" },
        credentials: "same-origin",
      });
      if (!response.ok) {
        let message = "Sending failed (" + response.status + ").";
        try { message = (await response.json()).error.message; } catch (e) { /* not JSON */ }
        const retry = response.headers.get("Retry-After");
        if (response.status === 429 && retry) {
          const reset = new Date(Date.now() + Number(retry) * 1000);
          message += " Resets at " + reset.toUTCString().slice(17, 22) + " UTC.";
        }
        showAlert(message);
        return;
      }
      textarea.value = "";
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer = parseEvents(buffer + decoder.decode(value, { stream: true }), (name, data) => {
          if (name === "start") {
            insertHTML(data.user_html);
            assistantNode = insertHTML(
              '<article class="message flex" id="message-' + data.assistant_id + '" aria-label="Assistant"><div class="max-w-[90%] rounded-lg border border-slate-200 bg-white px-4 py-3 dark:border-slate-800 dark:bg-slate-900 sm:max-w-[80%]"><div class="whitespace-pre-wrap break-words" data-answer><span class="typing" aria-label="Thinking">●●●</span></div></div></article>'
            );
          } else if (name === "delta" && assistantNode) {
            answerText += data.text;
            assistantNode.querySelector("[data-answer]").textContent = answerText;
          } else if ((name === "done" || name === "failed") && assistantNode) {
            assistantNode = replaceWith(assistantNode, data.html);
            if (name === "failed" && data.error) showAlert(data.error);
          }
          scrollDown();
        });
      }
    } catch (error) {
      showAlert("The connection dropped. The answer is still being saved: reload in a moment to see it.");
    } finally {
      setBusy(false);
      textarea.focus();
      scrollDown();
    }
  });
})();
