import type { Metadata, Viewport } from "next";
import type { ReactNode } from "react";

export const metadata: Metadata = {
  title: "Nightshift",
  description: "AI agents that work while you sleep: queued, checkpointed, on budget, with results in the morning.",
};

export const viewport: Viewport = { width: "device-width", initialScale: 1 };

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body
        style={{
          fontFamily: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif",
          margin: 0,
          padding: "1.5rem",
          maxWidth: 880,
          lineHeight: 1.5,
          color: "#1b1b1f",
        }}
      >
        {children}
      </body>
    </html>
  );
}
