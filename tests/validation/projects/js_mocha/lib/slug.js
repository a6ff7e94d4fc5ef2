"use strict";

/** A URL slug for `title`: lower case, ASCII letters and digits joined by `sep`. */
function slug(title, sep = "-") {
  return title
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean)
    .join(sep);
}

module.exports = { slug };
