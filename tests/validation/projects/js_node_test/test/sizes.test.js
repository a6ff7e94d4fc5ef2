"use strict";

const test = require("node:test");
const assert = require("node:assert");
const { Stack } = require("../lib/stack");

test("size follows pushes and pops", async (t) => {
  const stack = new Stack();
  await t.test("after two pushes", () => {
    stack.push("a").push("b");
    assert.strictEqual(stack.size, 2);
  });
  await t.test("after one pop", () => {
    stack.pop();
    assert.strictEqual(stack.size, 1);
  });
});

test("a million items", { skip: "too slow for every run" }, () => {});
