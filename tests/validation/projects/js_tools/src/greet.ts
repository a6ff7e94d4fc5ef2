/** A greeting for `name`, in the given language. */
export function greet(name: string, language: "en" | "fr" = "en"): string {
  const hello: string = language === "fr" ? "Bonjour" : "Hello";
  return `${hello}, ${name}!`;
}
