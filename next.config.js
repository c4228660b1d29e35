// @ts-check
/** @type {import('next').NextConfig} */
const nextConfig = {
  // The local/ launcher, tests and benches run under tsx; the app never imports them.
  poweredByHeader: false,
  // The end-to-end tests build into their own folder so they never clobber a running `next dev`.
  distDir: process.env.NIGHTSHIFT_DIST_DIR || ".next",
  // Native/binary packages stay out of the server bundle.
  serverExternalPackages: ["ws"],
};

export default nextConfig;
