/** CSV fields (lib/csv.ts), no database: RFC 4180 quoting, and no field a spreadsheet would run as a formula. */
import { assertEquals } from "./_assert.ts";
import { csvField, csvRow } from "../lib/csv.ts";

Deno.test("a field beginning with =, +, -, @, a tab or a carriage return is quoted behind a single quote", () => {
  const cases: [string, string][] = [
    ['=HYPERLINK("http://evil.example","x")', `"'=HYPERLINK(""http://evil.example"",""x"")"`],
    ["+1+2", `"'+1+2"`],
    ["-2+3", `"'-2+3"`],
    ["@SUM(A1:A9)", `"'@SUM(A1:A9)"`],
    ["\t=1", `"'\t=1"`],
    ["\r=1", `"'\r=1"`],
    ["=cmd|' /C calc'!A0", `"'=cmd|' /C calc'!A0"`],
  ];
  for (const [value, field] of cases) assertEquals(csvField(value), field, JSON.stringify(value));
  // Numbers go through the same rule: a negative one is text, not a formula.
  assertEquals(csvField(-5), `"'-5"`);
});

Deno.test("other fields follow RFC 4180: quoted only around a comma, a quote or a line break", () => {
  assertEquals(csvField("PLAYER"), "PLAYER");
  assertEquals(csvField(42), "42");
  assertEquals(csvField("a,b"), `"a,b"`);
  assertEquals(csvField('say "hi"'), `"say ""hi"""`);
  assertEquals(csvField("two\nlines"), `"two\nlines"`);
  assertEquals(csvField("a=b"), "a=b", "only the first character matters");
  assertEquals(csvField("'quoted already"), "'quoted already");
  assertEquals(csvField({ level: 3, note: "=1" }), `"{""level"":3,""note"":""=1""}"`);
  assertEquals(csvField(null), "null");
  assertEquals(csvRow([7, "LEVEL_MISMATCH", 12, "COACH", { a: 1 }]), `7,LEVEL_MISMATCH,12,COACH,"{""a"":1}"`);
});
