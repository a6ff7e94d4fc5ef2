"use strict";

const assert = require("node:assert");
const { slug } = require("../lib/slug");

describe("slug", () => {
  it("lower-cases words and joins them with dashes", () => {
    assert.strictEqual(slug("Hello World"), "hello-world");
  });

  it("drops accents", () => {
    assert.strictEqual(slug("Crème brûlée"), "creme-brulee");
  });

  it("drops punctuation at both ends", () => {
    assert.strictEqual(slug("  ¡Hola!  "), "hola");
  });

  it("keeps digits", () => {
    assert.strictEqual(slug("Top 10 tips"), "top-10-tips");
  });

  it("is empty for nothing", () => {
    assert.strictEqual(slug(""), "");
  });

  describe("with a separator", () => {
    it("uses it between words", () => {
      assert.strictEqual(slug("a b c", "_"), "a_b_c");
    });

    it("handles emoji like punctuation");
  });
});
