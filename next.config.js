// @ts-check
/** @type {import('next').NextConfig} */
const nextConfig = {
  // The local/ launcher, tests and benches run under tsx; the app never imports them.
  poweredByHeader: false,
  // Native/binary packages stay out of the server bundle.
  serverExternalPackages: ["ws"],
};

export default nextConfig;
