// SPDX-License-Identifier: MIT
// A small, safe Markdown renderer for model answers: the text is HTML-escaped first, then
// fenced code blocks, headings, lists, block quotes, paragraphs, inline code, bold, italic and
// http(s) links are turned into tags. Nothing of the input can become a tag or an attribute
// of its own, so model output never injects HTML or script. A pure module (no DOM): the chat
// page imports it, and the e2e tests import it in Node.

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

// Escapes text for use in HTML content and in double-quoted attributes.
export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

// Inline markup on one escaped line: code spans are set aside first so nothing inside them
// is formatted, then links, bold and italic.
function inline(escaped) {
  const spans = [];
  let s = escaped.replace(/`([^`]+)`/g, (_, code) => {
    spans.push(`<code>${code}</code>`);
    return `\u0000${spans.length - 1}\u0000`;
  });
  // [text](http(s)://...): the URL is already escaped, so it cannot leave the attribute.
  s = s.replace(/\[([^\]]+)\]\((https?:\/\/[^\s)]+)\)/g,
    (_, label, href) => `<a href="${href}" rel="noopener noreferrer" target="_blank">${label}</a>`);
  s = s.replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>');
  s = s.replace(/__([^_]+)__/g, '<strong>$1</strong>');
  s = s.replace(/(^|[^*\w])\*([^*\s][^*]*)\*(?!\w)/g, '$1<em>$2</em>');
  s = s.replace(/(^|[^_\w])_([^_\s][^_]*)_(?!\w)/g, '$1<em>$2</em>');
  return s.replace(/\u0000(\d+)\u0000/g, (_, i) => spans[Number(i)]);
}

// Renders Markdown text to an HTML string whose every piece of input text is escaped.
export function renderMarkdown(text) {
  const lines = String(text ?? '').replace(/\u0000/g, '').replace(/\r\n?/g, '\n').split('\n');
  const out = [];
  let para = [];
  let list = null; // 'ul' or 'ol' while inside a list
  const flushPara = () => {
    if (para.length) out.push(`<p>${para.map(inline).join('<br>')}</p>`);
    para = [];
  };
  const closeList = () => {
    if (list) out.push(`</${list}>`);
    list = null;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = line.match(/^\s*(`{3,}|~{3,})\s*([\w+#.-]*)/);
    if (fence) {
      flushPara();
      closeList();
      const body = [];
      for (i++; i < lines.length && !lines[i].trim().startsWith(fence[1]); i++) body.push(lines[i]);
      const lang = fence[2] ? ` class="language-${escapeHtml(fence[2])}"` : '';
      out.push(`<pre><code${lang}>${escapeHtml(body.join('\n'))}</code></pre>`);
      continue;
    }
    const escaped = escapeHtml(line);
    const heading = escaped.match(/^(#{1,6})\s+(.*)$/);
    const bullet = escaped.match(/^\s*[-*+]\s+(.*)$/);
    const numbered = escaped.match(/^\s*\d+[.)]\s+(.*)$/);
    const quote = escaped.match(/^&gt;\s?(.*)$/);
    if (!line.trim()) {
      flushPara();
      closeList();
    } else if (heading) {
      flushPara();
      closeList();
      const n = heading[1].length;
      out.push(`<h${n}>${inline(heading[2])}</h${n}>`);
    } else if (bullet || numbered) {
      flushPara();
      const kind = bullet ? 'ul' : 'ol';
      if (list !== kind) {
        closeList();
        out.push(`<${kind}>`);
        list = kind;
      }
      out.push(`<li>${inline((bullet || numbered)[1])}</li>`);
    } else if (quote) {
      flushPara();
      closeList();
      out.push(`<blockquote>${inline(quote[1])}</blockquote>`);
    } else {
      closeList();
      para.push(escaped);
    }
  }
  flushPara();
  closeList();
  return out.join('\n');
}
