// Security headers for every response, including Next's static assets that proxy.ts does not see. The values live
// in lib/http/security-headers.ts (proxy.ts sets the same ones on the answers it makes itself, plus the CSP).
// HSTS everywhere but `next dev`: browsers ignore it over plain http, and NODE_ENV is not yet "production" when
// `next build` reads this file.
import type { NextConfig } from "next";
import { API_CSP, commonSecurityHeaders, PROXY_FREE_API_PATHS } from "./lib/http/security-headers";

const securityHeaders = Object.entries(commonSecurityHeaders(process.env.NODE_ENV !== "development")).map(([key, value]) => ({ key, value }));

const nextConfig: NextConfig = {
  // The local/ launcher, tests and benches run under tsx; the app never imports them.
  poweredByHeader: false,
  // The end-to-end tests build into their own folder so they never clobber a running `next dev`.
  distDir: process.env.NIGHTSHIFT_DIST_DIR || ".next",
  // Native/binary packages stay out of the server bundle.
  serverExternalPackages: ["ws"],
  async headers() {
    return [
      { source: "/:path*", headers: securityHeaders },
      // The API routes proxy.ts skips get from here the CSP it sets on every other API answer.
      ...PROXY_FREE_API_PATHS.map((source) => ({ source, headers: [{ key: "Content-Security-Policy", value: API_CSP }] })),
    ];
  },
  // `npm test` runs `tsc --noEmit` over the whole tree first; the e2e build skips Next's second, slower pass.
  typescript: { ignoreBuildErrors: process.env.NIGHTSHIFT_SKIP_BUILD_TYPECHECK === "1" },
};

export default nextConfig;
