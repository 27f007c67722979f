// fakedetect serve: the page. Plain JavaScript, no framework, nothing fetched but this server's API.
"use strict";
const rows = [];
let maxUploadBytes = Infinity;  // the server's upload cap (api/info): larger files are not sent
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) { if (k === "class") node.className = v; else node.setAttribute(k, v); }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
};
const pct = (p) => (p === null || p === undefined ? "-" : (100 * p).toFixed(1) + "%");
const verdict = (fake) => el("span", { class: fake ? "fake" : "real" }, fake ? "fake" : "real");

async function loadInfo() {
  try {
    const info = await (await fetch("api/info")).json();
    maxUploadBytes = info.max_upload_bytes;
    document.getElementById("run").textContent =
      `run: ${info.project} · backbone ${info.backbone} · detectors: ${info.detectors.map(titled).join("; ")}` +
      (info.left_out || []).map((d) => ` · not shown: ${d.name} (${d.why})`).join("") +
      ` · upload cap ${(info.max_upload_bytes / 2 ** 20).toFixed(0)} MB`;
  } catch (e) {
    document.getElementById("run").textContent = "the server does not answer";
  }
}

const titled = (d) => d.title + (d.default ? " [predict's default]" : "");

function detectorTable(image) {
  const table = el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "detector"), el("th", {}, "P(fake)"),
    el("th", {}, "score"), el("th", {}, "decisions"))));
  const body = el("tbody");
  for (const d of image.detectors) {
    const decisions = el("td");
    for (const point of d.decisions) {
      decisions.append(el("div", {}, verdict(point.fake), ` ${point.label} (score > ${point.threshold.toFixed(4)})`));
    }
    body.append(el("tr", {}, el("td", {}, titled(d)), el("td", {}, pct(d.p_fake)),
      el("td", {}, d.score === null ? "-" : d.score.toFixed(4)), decisions));
  }
  table.append(body);
  return table;
}

// The file's header facts, and whether the verdict changes after the run's aligned re-encoding (JPEG 96)
function fileFacts(image) {
  if (image.file_format === undefined) return [];
  const jpeg = image.file_jpeg_quality ? ` quality ${image.file_jpeg_quality}, ${image.file_chroma_subsampling}` : "";
  const blocks = ["exif", "icc", "progressive"].filter((k) => image[`file_${k}`]).map((k) => k.toUpperCase());
  const facts = el("p", { class: "why" }, `File: ${image.file_format}${jpeg}, ${image.file_width}x${image.file_height} px, ` +
    `${image.file_mode} ${image.file_bit_depth}-bit` + (blocks.length ? `, ${blocks.join(", ")}` : ""));
  if (image.aligned_fake === undefined) return [facts];
  const again = image.verdict_rests_on_file
    ? el("p", { class: "flip" }, `The verdict changes when the image is ${image.aligned_as}: `, verdict(image.fake), " becomes ",
        verdict(image.aligned_fake), ` (P(fake) ${pct(image.aligned_p_fake)}). It may rest on the file's format, not on the pixels.`)
    : el("p", { class: "why" }, `When the image is ${image.aligned_as}, the verdict stays `, verdict(image.aligned_fake),
        ` (P(fake) ${pct(image.aligned_p_fake)}).`);
  return [facts, again];
}

function renderImage(image) {
  if (image.status !== "ok") {
    return el("div", { class: "card error" }, el("h3", {}, image.path),
      el("p", { class: "error-message" }, `Cannot score this file: ${image.message} [${image.reason}, HTTP ${image.http_status}]`));
  }
  const family = image.family ? `${image.family} (P ${pct(image.p_family)})` : "- (judged real: no family)";
  const verdicts = el("div", { class: "verdicts" },
    el("p", {}, "Verdict: ", verdict(image.fake), ` (P(fake) ${pct(image.p_fake)} by the ${image.detectors[0].title}) · family: ${family}`),
    ...fileFacts(image), detectorTable(image));
  const row = el("div", { class: "row" }, verdicts);
  if (image.heatmap) {
    row.append(el("figure", { class: "heatmap" }, el("img", { src: image.heatmap, alt: "Grad-CAM heatmap" }),
      el("figcaption", { class: "why" }, `where the level-1 network looked (for "${image.heatmap_class}")`)));
  }
  const near = el("div", { class: "neighbours" });
  for (const n of image.neighbours) {
    near.append(el("figure", {}, el("img", { src: n.thumbnail, alt: `training image ${n.row}` }),
      el("figcaption", {}, verdict(n.label === "fake"), ` ${n.generator}`, el("br"), `cosine ${n.similarity.toFixed(3)}`)));
  }
  return el("div", { class: "card" }, el("h3", {}, image.path), row,
    el("p", { class: "why" }, "Nearest training images (the k-NN bank the 1-NN detector votes with):"), near);
}

function addRow(image) {
  rows.push(image);
  document.getElementById("batch").hidden = false;
  document.getElementById("count").textContent = `(${rows.length} image${rows.length === 1 ? "" : "s"})`;
  const note = image.status !== "ok" ? image.message
    : image.verdict_rests_on_file ? `the verdict changes when the image is ${image.aligned_as}` : "";
  document.querySelector("#table tbody").append(el("tr", {}, el("td", {}, image.path), el("td", {}, pct(image.p_fake)),
    el("td", {}, image.status === "ok" ? verdict(image.fake) : "unreadable"), el("td", {}, image.family || "-"),
    el("td", {}, pct(image.p_family)), el("td", {}, note)));
}

async function scoreFile(file) {
  const form = new FormData();
  form.append("files", file, file.name);
  const heatmap = document.getElementById("heatmap").checked ? "1" : "0";
  let images;
  if (file.size > maxUploadBytes) {
    images = [{ path: file.name, status: "unreadable", reason: "file_too_large", http_status: 413,
      message: `larger than the server's upload cap (${file.size} bytes, the cap is ${maxUploadBytes}): not sent` }];
  } else {
    try {
      const response = await fetch(`api/score?heatmap=${heatmap}`, { method: "POST", body: form });
      const body = await response.json();
      images = body.images || [{ path: file.name, status: "unreadable", reason: body.error, message: body.message,
        http_status: response.status }];
    } catch (e) {
      images = [{ path: file.name, status: "unreadable", reason: "no_answer", message: String(e), http_status: 0 }];
    }
  }
  for (const image of images) {
    document.getElementById("results").prepend(renderImage(image));
    addRow(image);
  }
}

async function scoreAll(files) {
  for (const file of files) await scoreFile(file);
}

function download(name, type, text) {
  const link = el("a", { href: URL.createObjectURL(new Blob([text], { type })), download: name });
  document.body.append(link);
  link.click();
  link.remove();
}

const COLUMNS = ["path", "status", "reason", "p_fake", "fake", "threshold", "fake_at_0_5", "family", "p_family",
  "aligned_p_fake", "aligned_fake", "verdict_rests_on_file"];
function csvCell(v) {
  const s = v === null || v === undefined ? "" : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
function toCsv() {
  const names = rows.length ? rows[0].detectors.map((d) => d.name) : [];
  const header = COLUMNS.concat(...names.map((n) => [`${n}_p_fake`, `${n}_score`, `${n}_fake`]));
  const lines = [header.join(",")];
  for (const r of rows) {
    const extra = names.flatMap((n) => { const d = (r.detectors || []).find((x) => x.name === n) || {};
      return [d.p_fake, d.score, d.fake]; });
    lines.push(COLUMNS.map((c) => r[c]).concat(extra).map(csvCell).join(","));
  }
  return lines.join("\n") + "\n";
}

const drop = document.getElementById("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); scoreAll([...e.dataTransfer.files]); });
// As `fakedetect predict` does for folders: a folder's image files only (named files are all sent).
const IMAGE = /\.(png|jpe?g|bmp|webp)$/i;
document.getElementById("pick-files").addEventListener("change", (e) => { scoreAll([...e.target.files]); e.target.value = ""; });
document.getElementById("pick-folder").addEventListener("change", (e) => {
  scoreAll([...e.target.files].filter((f) => IMAGE.test(f.name)).sort((a, b) =>
    a.webkitRelativePath < b.webkitRelativePath ? -1 : 1));
  e.target.value = "";
});
document.getElementById("download-csv").addEventListener("click", () => download("fakedetect.csv", "text/csv", toCsv()));
document.getElementById("download-json").addEventListener("click", () => download("fakedetect.json", "application/json",
  JSON.stringify(rows.map(({ heatmap, ...rest }) => rest), null, 1)));
loadInfo();
