// Writes from page scripts (fetch) carry the key cookie; SameSite=Lax already keeps other sites'
// forms from sending it, and this refuses a cross-origin Origin header as well.
export function assertSameOrigin(request: Request): Response | undefined {
  const origin = request.headers.get('origin');
  if (!origin) return undefined;
  const host = request.headers.get('x-forwarded-host') ?? request.headers.get('host');
  return new URL(origin).host === host ? undefined : Response.json({ error: { message: 'cross-origin request refused' } }, { status: 403 });
}

export const isId = (id: string | undefined): id is string => id !== undefined && /^[A-Za-z0-9_-]{1,100}$/.test(id);
