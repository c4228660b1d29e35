// Any /api path no route serves: a JSON 404 (Next's own 404 is an HTML page, and the API promises JSON errors).
import { ApiError, errorJson } from "@/lib/http/errors";

export const dynamic = "force-dynamic";

const notFound = () => errorJson(new ApiError(404, "not_found", "No such API endpoint"));

export const GET = notFound;
export const HEAD = notFound;
export const POST = notFound;
export const PUT = notFound;
export const PATCH = notFound;
export const DELETE = notFound;
export const OPTIONS = notFound;
