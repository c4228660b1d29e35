// globalSetup: unpack Chromium once, before the workers start, so that parallel test files never race to unpack
// it into the same place.
import { chromiumPath } from "../support/browser";

export default async function setup(): Promise<void> {
  process.env.NIGHTSHIFT_CHROMIUM_PATH = await chromiumPath();
}
