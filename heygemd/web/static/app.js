// heygemd web: keeps the live parts of a page current (server-sent events) and sends the page's
// actions through the JSON API. Without this script every form still works by itself.
(function () {
  "use strict";

  var messages = JSON.parse((document.getElementById("i18n") || {}).textContent || "{}");
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.content : "";

  function t(key, params) {
    var text = messages[key] || key;
    Object.keys(params || {}).forEach(function (name) {
      text = text.split("{" + name + "}").join(String(params[name]));
    });
    return text;
  }

  // -- live regions: the server sends the region's new HTML whenever it changes
  function follow(region) {
    if (!window.EventSource) return;
    var source = new EventSource(region.getAttribute("data-live"));
    source.onmessage = function (event) {
      if (!event.data) return;
      region.innerHTML = event.data;
      bindActions(region);
    };
    source.addEventListener("end", function () { source.close(); });
  }

  // -- actions (pause, resume, cancel): through the API, then the page is shown again
  function bindActions(root) {
    root.querySelectorAll("form[data-api]").forEach(function (form) {
      if (form.id === "upload-form" || form.getAttribute("data-bound")) return;
      form.setAttribute("data-bound", "1");
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var question = form.getAttribute("data-confirm");
        if (question && !window.confirm(question)) return;
        fetch(form.getAttribute("data-api"), {
          method: "POST",
          credentials: "same-origin",
          headers: { "X-CSRF-Token": csrf, "Accept": "application/json" },
        }).then(function (response) {
          return response.json().then(function (body) { return { ok: response.ok, body: body }; });
        }).then(function (answer) {
          if (!answer.ok && answer.body.error) window.alert(answer.body.error.message);
          window.location.reload();
        }, function () { window.location.reload(); });
      });
    });
  }

  // -- the upload form: checked here first, sent with a progress bar, then the new job's page
  function bindUpload(form) {
    var error = document.getElementById("upload-error");
    var bar = document.getElementById("upload-progress");
    var button = document.getElementById("submit");
    var buttonText = button.textContent;

    function show(message) {
      error.textContent = message;
      error.hidden = false;
      bar.hidden = true;
      button.disabled = false;
      button.textContent = buttonText;
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      error.hidden = true;
      var maxFile = Number(form.getAttribute("data-max-file")) || 0;
      var maxTemplates = Number(form.getAttribute("data-max-templates")) || 0;
      var files = Array.prototype.slice.call(form.elements.audio.files)
        .concat(Array.prototype.slice.call(form.elements.templates.files));
      for (var i = 0; i < files.length; i++) {
        if (maxFile && files[i].size > maxFile) {
          show(t("upload.client_file_too_large", { name: files[i].name, size: form.getAttribute("data-max-file-text") }));
          return;
        }
      }
      if (maxTemplates && form.elements.templates.files.length > maxTemplates) {
        show(t("upload.client_too_many", { count: maxTemplates }));
        return;
      }
      var request = new XMLHttpRequest();
      request.open("POST", form.getAttribute("data-api"));
      request.setRequestHeader("X-CSRF-Token", csrf);
      request.setRequestHeader("Accept", "application/json");
      request.upload.onprogress = function (progress) {
        if (!progress.lengthComputable) return;
        var percent = Math.floor((100 * progress.loaded) / progress.total);
        bar.hidden = false;
        bar.value = percent;
        button.textContent = t("upload.uploading", { percent: percent });
      };
      request.onload = function () {
        var body = {};
        try { body = JSON.parse(request.responseText || "{}"); } catch (ignored) { body = {}; }
        if (request.status === 201 && body.url) {
          window.location.href = body.url;
        } else {
          show(body.error ? body.error.message : t("upload.failed", { error: request.status + " " + request.statusText }));
        }
      };
      request.onerror = function () { show(t("upload.failed", { error: "" })); };
      button.disabled = true;
      request.send(new FormData(form));
    });
  }

  document.querySelectorAll("[data-live]").forEach(follow);
  bindActions(document);
  var upload = document.getElementById("upload-form");
  if (upload) bindUpload(upload);
})();
