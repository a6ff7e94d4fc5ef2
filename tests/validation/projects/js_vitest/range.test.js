import { describe, expect, test } from "vitest";
import { range } from "./range.js";

describe("range", () => {
  test("counts up", () => {
    expect(range(0, 3)).toEqual([0, 1, 2]);
  });

  test("counts down", () => {
    expect(range(3, 0, -1)).toEqual([3, 2, 1]);
  });

  test("is empty when there is nothing between", () => {
    expect(range(2, 2)).toEqual([]);
  });

  test("refuses a zero step", () => {
    expect(() => range(0, 1, 0)).toThrow(RangeError);
  });

  test.skip("floats", () => {});
});
