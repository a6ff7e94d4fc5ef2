"use strict";

const { format } = require("./money");

describe("format", () => {
  test("whole amounts", () => {
    expect(format(500)).toBe("5.00 EUR");
  });

  test("cents are padded", () => {
    expect(format(1905)).toBe("19.05 EUR");
  });

  test("negative amounts", () => {
    expect(format(-250, "USD")).toBe("-2.50 USD");
  });

  test("fractions of a cent are refused", () => {
    expect(() => format(1.5)).toThrow(TypeError);
  });

  test.skip("thousands separators", () => {});

  test.todo("other currencies' decimal places");
});
