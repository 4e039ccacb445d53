// Every figure's image links to the full-size image, so a reader can open it at full resolution.
// A figure with a phone layout is a <picture>: the link wraps the whole picture.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("figure img, .cell_output img").forEach((img) => {
    const target = img.parentElement.tagName === "PICTURE" ? img.parentElement : img;
    if (target.closest("a")) return;
    const link = document.createElement("a");
    link.href = img.src;
    link.title = "Open the full-size image";
    target.replaceWith(link);
    link.appendChild(target);
  });
});
