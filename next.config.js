// @ts-check
// Security headers for every response (lib/http/security-headers.ts holds the values; proxy.ts adds the CSP).
// HSTS everywhere but `next dev`: browsers ignore it over plain http, and NODE_ENV is not yet "production" when
// `next build` reads this file.
const production = process.env.NODE_ENV !== "development";
const securityHeaders = [
  { key: "X-Content-Type-Options", value: "nosniff" },
  { key: "Referrer-Policy", value: "strict-origin-when-cross-origin" },
  { key: "X-Frame-Options", value: "DENY" },
  { key: "Cross-Origin-Opener-Policy", value: "same-origin" },
  { key: "Permissions-Policy", value: "camera=(), microphone=(), geolocation=(), payment=()" },
  ...(production ? [{ key: "Strict-Transport-Security", value: "max-age=63072000; includeSubDomains" }] : []),
];
/** @type {import('next').NextConfig} */
const nextConfig = {
  // The local/ launcher, tests and benches run under tsx; the app never imports them.
  poweredByHeader: false,
  // The end-to-end tests build into their own folder so they never clobber a running `next dev`.
  distDir: process.env.NIGHTSHIFT_DIST_DIR || ".next",
  // Native/binary packages stay out of the server bundle.
  serverExternalPackages: ["ws"],
  async headers() {
    return [{ source: "/:path*", headers: securityHeaders }];
  },
  // `npm test` runs `tsc --noEmit` over the whole tree first; the e2e build skips Next's second, slower pass.
  typescript: { ignoreBuildErrors: process.env.NIGHTSHIFT_SKIP_BUILD_TYPECHECK === "1" },
};

export default nextConfig;
