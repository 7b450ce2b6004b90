// Coffer console: uploads a file in parts (S3 multipart, through the console) with a progress
// bar. Without this script the form posts the file whole; nothing else needs it.
"use strict";
(function () {
  const form = document.getElementById("upload-form");
  if (!form || !window.fetch || !window.XMLHttpRequest) return;
  const token = document.querySelector('meta[name="csrf-token"]').content;
  const PART = 8 * 1024 * 1024; // above S3's 5 MiB minimum part size

  function api(bucket, step, body) {
    return fetch("/api/upload/" + step + "/" + encodeURIComponent(bucket), {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": token },
      body: JSON.stringify(body),
    }).then(async (r) => {
      let j = {};
      try { j = await r.json(); } catch (_) { /* not JSON */ }
      if (!r.ok) throw new Error(j.error || "The server answered " + r.status + ".");
      return j;
    });
  }

  function putPart(url, chunk, onProgress) {
    return new Promise((resolve, reject) => {
      const x = new XMLHttpRequest();
      x.open("PUT", url);
      x.setRequestHeader("x-csrf-token", token);
      x.upload.onprogress = (e) => onProgress(e.loaded);
      x.onload = () => {
        let j = {};
        try { j = JSON.parse(x.responseText); } catch (_) { /* not JSON */ }
        if (x.status === 200) resolve(j.etag);
        else reject(new Error(j.error || "The server answered " + x.status + "."));
      };
      x.onerror = () => reject(new Error("The connection failed."));
      x.send(chunk);
    });
  }

  function showError(message) {
    let p = document.getElementById("error");
    if (!p) {
      p = document.createElement("p");
      p.id = "error";
      p.className = "error";
      p.setAttribute("role", "alert");
      document.getElementById("main").prepend(p);
    }
    p.textContent = message;
  }

  form.addEventListener("submit", async (ev) => {
    const input = document.getElementById("upload-file");
    if (!input.files.length) return;
    ev.preventDefault();
    const file = input.files[0];
    const bucket = form.dataset.bucket;
    const key = form.querySelector('input[name="prefix"]').value + file.name;
    const status = document.getElementById("upload-status");
    const bar = document.getElementById("upload-progress");
    const percent = document.getElementById("upload-percent");
    const button = document.getElementById("upload-button");
    const seen = [];
    const show = (sent) => {
      const v = file.size ? Math.floor((sent * 100) / file.size) : 100;
      bar.value = v;
      percent.textContent = v + "%";
      if (seen[seen.length - 1] !== v) {
        seen.push(v);
        // What the bar showed, kept for the page the upload leads to.
        sessionStorage.setItem("coffer-upload-progress", seen.join(","));
      }
    };
    status.hidden = false;
    button.disabled = true;
    show(0);
    let uploadId;
    try {
      uploadId = (await api(bucket, "start", { key: key, content_type: file.type })).upload_id;
      const parts = [];
      let done = 0;
      for (let n = 1, off = 0; ; n++, off += PART) {
        const chunk = file.slice(off, Math.min(off + PART, file.size));
        const url = "/api/upload/part/" + encodeURIComponent(bucket) + "?key=" + encodeURIComponent(key) +
          "&upload=" + encodeURIComponent(uploadId) + "&part=" + n;
        const etag = await putPart(url, chunk, (loaded) => show(done + loaded));
        parts.push({ number: n, etag: etag });
        done += chunk.size;
        show(done);
        if (off + PART >= file.size) break;
      }
      const res = await api(bucket, "complete", { key: key, upload_id: uploadId, parts: parts });
      show(file.size);
      window.location.assign(res.href);
    } catch (e) {
      showError("Upload failed: " + e.message);
      if (uploadId) api(bucket, "abort", { key: key, upload_id: uploadId }).catch(() => {});
      button.disabled = false;
    }
  });
})();
