// The review page shows an email draft (a send_email approval) as the plain text it will be sent as, never rendered
// as markdown: there a link's text could hide where it points ("[https://bank.example](https://evil.example)" reads
// as the bank), and the reviewer would approve something other than what goes out.
import { describe, expect, test } from "vitest";
import { draftDisplay } from "@/lib/console/format";

describe("draftDisplay", () => {
  const email = "To: ada@example.com\nSubject: Your account\n\nLog in at [https://bank.example](https://evil.example).";

  test("an email draft is plain text, exactly as it will be sent", () => {
    expect(draftDisplay({ kind: "email", text: email, agent: "outreach" })).toEqual({ as: "plain", text: email });
  });

  test("any other draft is markdown; an empty one is empty", () => {
    expect(draftDisplay({ text: "# Ten tips", agent: "content" })).toEqual({ as: "markdown", text: "# Ten tips" });
    expect(draftDisplay("plain string draft")).toEqual({ as: "markdown", text: "plain string draft" });
    expect(draftDisplay(null).as).toBe("empty");
    expect(draftDisplay({ kind: "email", text: "" }).as).toBe("empty");
  });
});
