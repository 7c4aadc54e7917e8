import test from "ava";
import { Conditions } from "../core/conditions.js";

test("a transition only when the status changes; first sight says so", (t) => {
  const c = new Conditions<string, string>();
  t.deepEqual(c.set("a", "ok"), { key: "a", before: undefined, after: "ok" });
  t.is(c.set("a", "ok"), null);
  t.deepEqual(c.set("a", "stalled"), { key: "a", before: "ok", after: "stalled" });
  t.is(c.get("a"), "stalled");
});

test("update() reports appeared and changed in order, then the cleared, and forgets them", (t) => {
  const c = new Conditions<string, number>();
  c.update(
    new Map([
      ["x", 1],
      ["y", 2],
    ]),
  );
  t.deepEqual(
    c.update(
      new Map([
        ["z", 3],
        ["y", 2],
      ]),
    ),
    [
      { key: "z", before: undefined, after: 3 },
      { key: "x", before: 1, after: undefined },
    ],
  );
  t.is(c.get("x"), undefined);
  t.deepEqual(c.update(new Map([["y", 4]])), [
    { key: "y", before: 2, after: 4 },
    { key: "z", before: 3, after: undefined },
  ]);
});
