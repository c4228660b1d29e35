// Markdown drafts and results as HTML that is safe to put in the page: markdown-it renders (raw HTML in the source
// is not passed through: `html: false` escapes it), then sanitize-html keeps only an allow-list of tags, attributes
// and URL schemes — two well-kept libraries, so an agent's (or a fetched page's) text can never run script in the
// console. Rendered on the server: nothing of either library reaches the browser.
import "server-only";
import MarkdownIt from "markdown-it";
import sanitizeHtml from "sanitize-html";

const md = new MarkdownIt({ html: false, linkify: true, typographer: false, breaks: false });

const ALLOWED: sanitizeHtml.IOptions = {
  allowedTags: [
    "h1", "h2", "h3", "h4", "h5", "h6", "p", "br", "hr", "blockquote", "pre", "code", "em", "strong", "del", "s",
    "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td", "img", "sup", "sub",
  ],
  allowedAttributes: { a: ["href", "title"], img: ["src", "alt", "title"], th: ["style"], td: ["style"], ol: ["start"] },
  allowedStyles: { th: { "text-align": [/^(left|right|center)$/] }, td: { "text-align": [/^(left|right|center)$/] } },
  allowedSchemes: ["http", "https", "mailto"],
  // Images only from the web (no data: or javascript: URLs).
  allowedSchemesByTag: { img: ["http", "https"] },
  allowProtocolRelative: false,
  // Links leave the console in a new tab without handing it a window.opener or a referrer.
  transformTags: {
    a: sanitizeHtml.simpleTransform("a", { rel: "noopener noreferrer nofollow", target: "_blank" }),
  },
};
ALLOWED.allowedAttributes = { ...ALLOWED.allowedAttributes, a: ["href", "title", "rel", "target"] };

/** Sanitised HTML of a markdown text. */
export function renderMarkdown(text: string): string {
  return sanitizeHtml(md.render(text), ALLOWED);
}
