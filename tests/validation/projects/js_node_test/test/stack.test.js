"use strict";

const test = require("node:test");
const assert = require("node:assert");
const { Stack } = require("../lib/stack");

test.describe("Stack", () => {
  test.it("starts empty", () => {
    assert.strictEqual(new Stack().size, 0);
  });

  test.it("pops what was pushed last", () => {
    assert.strictEqual(new Stack().push(1).push(2).pop(), 2);
  });

  test.it("refuses to pop when empty", () => {
    assert.throws(() => new Stack().pop(), /empty stack/);
  });

  test.it("has a peek", { todo: "peek is not written yet" }, () => {});
});
