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
      // the page's own question replaces the tick box a form sent without the script needs
      form.querySelectorAll(".confirm-box").forEach(function (box) { box.hidden = true; });
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var question = form.getAttribute("data-confirm");
        if (question && !window.confirm(question)) return;
        fetch(form.getAttribute("data-api"), {
          method: form.getAttribute("data-method") || "POST",
          credentials: "same-origin",
          headers: { "X-CSRF-Token": csrf, "Accept": "application/json" },
        }).then(function (response) {
          return response.json().then(function (body) { return { ok: response.ok, body: body }; });
        }).then(function (answer) {
          if (!answer.ok && answer.body.error) window.alert(answer.body.error.message);
          var then = form.getAttribute("data-then");
          if (answer.ok && then) window.location.href = then;
          else window.location.reload();
        }, function () { window.location.reload(); });
      });
    });
  }

  // -- the upload form: files dropped or chosen are listed (size, duration, a player) and checked here as the
  // service would check them, then sent with a progress bar; the answer is the new job's page
  function suffixOf(name) {
    var dot = name.lastIndexOf(".");
    return dot < 0 ? "" : name.slice(dot).toLowerCase();
  }

  function sizeText(bytes) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var value = bytes, unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return (unit === 0 ? String(value) : value.toFixed(1)) + " " + units[unit];
  }

  function durationText(seconds) {
    var whole = Math.max(0, Math.round(seconds));
    var hours = Math.floor(whole / 3600), minutes = Math.floor((whole % 3600) / 60), secs = whole % 60;
    function two(n) { return (n < 10 ? "0" : "") + n; }
    if (hours) return t("duration.hours", { h: hours, m: two(minutes) });
    if (minutes) return t("duration.minutes", { m: minutes, s: two(secs) });
    return t("duration.seconds", { s: seconds >= 10 ? secs : seconds.toFixed(1) });
  }

  function filesOf(input) { return Array.prototype.slice.call(input.files || []); }

  function setFiles(input, files) {
    var transfer = new DataTransfer();
    files.forEach(function (file) { transfer.items.add(file); });
    input.files = transfer.files;
  }

  function bindUpload(form) {
    var error = document.getElementById("upload-error");
    var bar = document.getElementById("upload-progress");
    var button = document.getElementById("submit");
    var buttonText = button.textContent;
    var drop = document.getElementById("drop");
    var list = document.getElementById("chosen");
    var refusalList = document.getElementById("refusals");
    var audioInput = form.elements.audio, templatesInput = form.elements.templates;
    var audioSuffixes = (form.getAttribute("data-audio-suffixes") || "").split(",");
    var templateSuffixes = (form.getAttribute("data-template-suffixes") || "").split(",");
    var maxFile = Number(form.getAttribute("data-max-file")) || 0;
    var maxUpload = Number(form.getAttribute("data-max-upload")) || 0;
    var maxTemplates = Number(form.getAttribute("data-max-templates")) || 0;
    var maxAudioSeconds = Number(form.getAttribute("data-max-audio-seconds")) || 0;
    var durations = new Map();  // File -> seconds (or null: this browser cannot read it)
    var addresses = [];

    function show(message) {
      error.textContent = message;
      error.hidden = false;
      bar.hidden = true;
      button.textContent = buttonText;
      check();
    }

    // What the service would refuse, said before anything is sent.
    function refusals() {
      var found = [], audios = filesOf(audioInput), templates = filesOf(templatesInput), seen = {}, total = 0;
      audios.forEach(function (file) {
        if (audioSuffixes.indexOf(suffixOf(file.name)) < 0) found.push(t("upload.not_audio", { name: file.name }));
        var seconds = durations.get(file);
        if (maxAudioSeconds && seconds && seconds > maxAudioSeconds) {
          found.push(t("upload.client_audio_too_long", { name: file.name, limit: durationText(maxAudioSeconds) }));
        }
      });
      templates.forEach(function (file) {
        if (templateSuffixes.indexOf(suffixOf(file.name)) < 0) found.push(t("upload.not_template", { name: file.name }));
      });
      audios.concat(templates).forEach(function (file) {
        var key = file.name.toLowerCase();
        if (seen[key]) found.push(t("upload.duplicate", { name: file.name }));
        seen[key] = true;
        total += file.size;
        if (file.size === 0) found.push(t("upload.client_empty", { name: file.name }));
        if (maxFile && file.size > maxFile) {
          found.push(t("upload.client_file_too_large", { name: file.name, size: form.getAttribute("data-max-file-text") }));
        }
      });
      if (maxTemplates && templates.length > maxTemplates) found.push(t("upload.client_too_many", { count: maxTemplates }));
      if (maxUpload && total > maxUpload) found.push(t("upload.client_upload_too_large", { size: sizeText(maxUpload) }));
      return found;
    }

    function check() {
      var found = refusals();
      refusalList.innerHTML = "";
      found.forEach(function (text) {
        var item = document.createElement("li");
        item.textContent = text;
        refusalList.appendChild(item);
      });
      refusalList.hidden = found.length === 0;
      button.disabled = found.length > 0;
      return found;
    }

    function remove(file) {
      [audioInput, templatesInput].forEach(function (input) {
        setFiles(input, filesOf(input).filter(function (other) { return other !== file; }));
      });
      render();
    }

    function preview(file, kind, item) {
      var address = URL.createObjectURL(file);
      addresses.push(address);
      var media = document.createElement(kind === "audio" ? "audio" : suffixOf(file.name).match(/^\.(jpe?g|png|bmp|webp|tiff?)$/) ? "img" : "video");
      media.className = "preview";
      media.src = address;
      var length = item.querySelector(".length");
      if (media.tagName === "IMG") {
        media.alt = "";
        durations.set(file, 0);
        item.insertBefore(media, item.firstChild);
        return;
      }
      media.preload = "metadata";
      if (kind === "audio") media.controls = true;
      else media.muted = true;
      media.addEventListener("loadedmetadata", function () {
        if (isFinite(media.duration)) {
          durations.set(file, media.duration);
          length.textContent = durationText(media.duration);
          // metadata alone draws no picture: a small seek decodes the frame the preview shows
          if (kind !== "audio") media.currentTime = Math.min(0.1, media.duration / 2);
        }
        check();
      });
      media.addEventListener("error", function () {
        media.classList.add("unplayable");  // a grey box, not a black one that looks like a dark video
        durations.set(file, null);
        length.textContent = t("upload.unreadable_here");
        length.classList.add("warn");
      });
      if (kind === "audio") item.appendChild(media);
      else item.insertBefore(media, item.firstChild);
    }

    function render() {
      addresses.forEach(function (address) { URL.revokeObjectURL(address); });
      addresses = [];
      list.innerHTML = "";
      var chosen = filesOf(audioInput).map(function (file) { return [file, "audio"]; })
        .concat(filesOf(templatesInput).map(function (file) { return [file, "template"]; }));
      chosen.forEach(function (pair) {
        var file = pair[0], kind = pair[1];
        var item = document.createElement("li");
        item.className = "file " + kind;
        item.setAttribute("data-name", file.name);
        var facts = document.createElement("div");
        facts.className = "about";
        var name = document.createElement("span");
        name.className = "name";
        name.textContent = file.name;
        var label = document.createElement("span");
        label.className = "badge";
        label.textContent = t(kind === "audio" ? "upload.kind_audio" : "upload.kind_template");
        var size = document.createElement("span");
        size.className = "facts size";
        size.textContent = sizeText(file.size);
        var length = document.createElement("span");
        length.className = "facts length";
        var cross = document.createElement("button");
        cross.type = "button";
        cross.className = "small secondary remove";
        cross.textContent = t("upload.remove");
        cross.setAttribute("aria-label", t("upload.remove") + " " + file.name);
        cross.addEventListener("click", function () { remove(file); });
        [name, label, size, length, cross].forEach(function (part) { facts.appendChild(part); });
        item.appendChild(facts);
        list.appendChild(item);
        preview(file, kind, item);
      });
      list.hidden = chosen.length === 0;
      check();
    }

    // Dropped files are sorted by their names: audio to the audio, everything else to the templates.
    function take(files) {
      var audios = filesOf(audioInput), templates = filesOf(templatesInput);
      files.forEach(function (file) {
        if (audioSuffixes.indexOf(suffixOf(file.name)) >= 0) audios.push(file);
        else templates.push(file);
      });
      setFiles(audioInput, audios);
      setFiles(templatesInput, templates);
      error.hidden = true;
      render();
    }

    drop.hidden = false;
    ["dragenter", "dragover"].forEach(function (name) {
      drop.addEventListener(name, function (event) { event.preventDefault(); drop.classList.add("over"); });
    });
    drop.addEventListener("dragleave", function () { drop.classList.remove("over"); });
    drop.addEventListener("drop", function (event) {
      event.preventDefault();
      drop.classList.remove("over");
      take(Array.prototype.slice.call(event.dataTransfer.files || []));
    });
    [audioInput, templatesInput].forEach(function (input) { input.addEventListener("change", render); });

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      error.hidden = true;
      if (check().length) return;
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
    render();
    bindPreview(form);
  }

  // -- the script's preview: its first sentence(s) spoken by the service with the voice, language and speed chosen
  function bindPreview(form) {
    var button = document.getElementById("preview");
    var player = document.getElementById("preview-player");
    var problem = document.getElementById("preview-error");
    if (!button) return;
    var buttonText = button.textContent, address = null;
    button.hidden = false;
    offerUsableVoices(form.elements.voice, document.getElementById("languages"));
    button.addEventListener("click", function () {
      var speed = form.elements.speed.value;
      var wanted = { text: form.elements.script.value, voice: form.elements.voice.value || "auto",
        language: form.elements.language.value || "auto" };
      if (speed) wanted.speed = Number(speed);
      problem.hidden = true;
      button.disabled = true;
      button.textContent = t("upload.previewing");
      fetch(button.getAttribute("data-api"), {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": csrf, "Accept": "application/json", "Content-Type": "application/json" },
        body: JSON.stringify(wanted),
      }).then(function (response) {
        if (response.ok) return response.blob();
        return response.json().then(function (body) {
          var detail = body.error ? body.error.message : (body.detail ? JSON.stringify(body.detail) : response.status);
          throw new Error(detail);
        });
      }).then(function (wav) {
        if (address) URL.revokeObjectURL(address);
        address = URL.createObjectURL(wav);
        player.src = address;
        player.hidden = false;
        var playing = player.play();
        if (playing && playing.catch) playing.catch(function () { /* the controls are there to start it */ });
      }, function (failure) {
        problem.textContent = t("upload.preview_failed", { error: failure.message });
        problem.hidden = false;
      }).then(function () {
        button.disabled = false;
        button.textContent = buttonText;
      });
    });
  }

  // The voices the service can speak with now (as heygemd doctor lists them), and the languages they speak.
  function offerUsableVoices(picker, languages) {
    fetch(picker.getAttribute("data-api"), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (list) {
        if (!list) return;
        var usable = {}, spoken = {};
        list.voices.forEach(function (voice) {
          if (!voice.usable) return;
          usable[voice.engine] = true;
          voice.languages.forEach(function (language) { spoken[language] = true; });
        });
        Array.prototype.slice.call(picker.options).forEach(function (option) {
          if (option.value && !usable[option.value]) option.remove();
        });
        languages.innerHTML = "";
        ["auto"].concat(Object.keys(spoken).sort()).forEach(function (language) {
          var option = document.createElement("option");
          option.value = language;
          languages.appendChild(option);
        });
      }, function () { /* every voice stays offered; the service says which it cannot use */ });
  }

  // -- the gallery: a thumbnail becomes its video's player when clicked, and plays
  function bindPlayers(root) {
    root.querySelectorAll("a[data-play]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        var video = document.createElement("video");
        var picture = link.querySelector("img");
        video.controls = true;
        video.autoplay = true;
        video.src = link.getAttribute("data-play");
        if (picture) video.poster = picture.src;
        link.parentNode.replaceChild(video, link);
        var playing = video.play();
        if (playing && playing.catch) playing.catch(function () { /* the controls are there to start it */ });
      });
    });
  }

  bindPlayers(document);
  document.querySelectorAll("[data-live]").forEach(follow);
  bindActions(document);
  var upload = document.getElementById("upload-form");
  if (upload) bindUpload(upload);
})();
