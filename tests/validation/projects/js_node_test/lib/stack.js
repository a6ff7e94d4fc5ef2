"use strict";

/** A last-in, first-out stack. */
class Stack {
  #items = [];

  push(item) {
    this.#items.push(item);
    return this;
  }

  pop() {
    if (this.#items.length === 0) throw new Error("empty stack");
    return this.#items.pop();
  }

  get size() {
    return this.#items.length;
  }
}

module.exports = { Stack };
