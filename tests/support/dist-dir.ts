/** Where the end-to-end and browser tests' production build lives (git-ignored; never clobbers `next dev`). */
export const E2E_DIST_DIR = ".next-e2e";
