// @ts-check
/** @type {import('next').NextConfig} */
const nextConfig = {
  // The local/ launcher, tests and benches run under tsx; the app never imports them.
  poweredByHeader: false,
  // The end-to-end tests build into their own folder so they never clobber a running `next dev`.
  distDir: process.env.NIGHTSHIFT_DIST_DIR || ".next",
  // Native/binary packages stay out of the server bundle.
  serverExternalPackages: ["ws"],
  // `npm test` runs `tsc --noEmit` over the whole tree first; the e2e build skips Next's second, slower pass.
  typescript: { ignoreBuildErrors: process.env.NIGHTSHIFT_SKIP_BUILD_TYPECHECK === "1" },
};

export default nextConfig;
