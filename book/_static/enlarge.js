// Every figure's image links to the full-size image, so a reader can open it at full resolution.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("figure img, .cell_output img").forEach((img) => {
    if (img.closest("a")) return;
    const link = document.createElement("a");
    link.href = img.src;
    link.title = "Open the full-size image";
    img.replaceWith(link);
    link.appendChild(img);
  });
});
