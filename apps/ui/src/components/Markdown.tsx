import { memo } from "react";
import ReactMarkdown from "react-markdown";
import remarkGfm from "remark-gfm";

// Assistant text as Markdown. Raw HTML is not rendered (react-markdown's default), so an
// agent's output cannot inject markup into the app.
export const Markdown = memo(function Markdown({ text }: { text: string }) {
  return (
    <div className="prose-chat text-sm leading-relaxed">
      <ReactMarkdown remarkPlugins={[remarkGfm]}>{text}</ReactMarkdown>
    </div>
  );
});
