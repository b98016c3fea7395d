import { useState, type FormEvent, type ReactNode } from "react";
import { Link, useNavigate, useSearchParams } from "react-router-dom";
import { call, send } from "../api/client";
import { login, register } from "../api/session";
import { ErrorMessage } from "../components/Status";
import { useAction } from "../components/useAction";

/** A form that runs ``action`` once at a time and shows its error. */
function AccountForm({ title, submitLabel, action, children }: { title: string; submitLabel: string; action: () => Promise<void>; children: ReactNode }) {
  const { run, busy, error } = useAction();
  const submit = (event: FormEvent) => {
    event.preventDefault();
    void run(action);
  };
  return (
    <section className="mx-auto max-w-md">
      <h1 className="mb-4 text-2xl font-bold">{title}</h1>
      <form onSubmit={submit} className="card flex flex-col gap-3">
        {children}
        <ErrorMessage error={error} title={`${title} failed`} />
        <button type="submit" className="btn" disabled={busy}>
          {busy ? "Please wait…" : submitLabel}
        </button>
      </form>
    </section>
  );
}

/** What an account form's action came to, said in place of the form. */
function Outcome({ title, children }: { title: string; children: ReactNode }) {
  return (
    <section className="mx-auto max-w-md" role="status">
      <h1 className="mb-4 text-2xl font-bold">{title}</h1>
      <p>{children}</p>
    </section>
  );
}

function Field({ id, label, type = "text", value, onChange, autoComplete, help }: { id: string; label: string; type?: string; value: string; onChange: (value: string) => void; autoComplete?: string; help?: string }) {
  return (
    <div>
      <label htmlFor={id} className="label">{label}</label>
      <input id={id} type={type} className="field" value={value} onChange={(event) => onChange(event.target.value)} autoComplete={autoComplete} required aria-describedby={help ? `${id}-help` : undefined} />
      {help && <p id={`${id}-help`} className="mt-1 text-sm text-slate-700">{help}</p>}
    </div>
  );
}

function useNext() {
  const [params] = useSearchParams();
  const next = params.get("next");
  // Only a path of this app: never an address elsewhere.
  return next && next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

export function LoginPage() {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const navigate = useNavigate();
  const next = useNext();
  return (
    <AccountForm title="Log in" submitLabel="Log in" action={async () => { await login(email, password); navigate(next); }}>
      <Field id="email" label="E-mail" type="email" value={email} onChange={setEmail} autoComplete="username" />
      <Field id="password" label="Password" type="password" value={password} onChange={setPassword} autoComplete="current-password" />
      <p className="text-sm">
        No account? <Link to="/register" className="link">Register</Link>. <Link to="/forgot-password" className="link">Forgot your password?</Link>
      </p>
    </AccountForm>
  );
}

export function RegisterPage() {
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const navigate = useNavigate();
  return (
    <AccountForm title="Register" submitLabel="Create account" action={async () => { await register(name, email, password); navigate("/verify?registered=1"); }}>
      <Field id="name" label="Name" value={name} onChange={setName} autoComplete="name" />
      <Field id="email" label="E-mail" type="email" value={email} onChange={setEmail} autoComplete="email" />
      <Field id="password" label="Password" type="password" value={password} onChange={setPassword} autoComplete="new-password" help="At least 10 characters and hard to guess; not your name or e-mail." />
    </AccountForm>
  );
}

export function VerifyPage() {
  const [params] = useSearchParams();
  const [code, setCode] = useState(params.get("token") ?? "");
  const [verified, setVerified] = useState(false);
  if (verified) {
    return (
      <Outcome title="Address verified">
        Thank you: order e-mails will reach you. <Link to="/" className="link">Back to the catalog</Link>.
      </Outcome>
    );
  }
  return (
    <AccountForm title="Verify your e-mail" submitLabel="Verify" action={async () => { await call<void>("/auth/verify", { method: "POST", body: { token: code.trim() } }); setVerified(true); }}>
      {params.get("registered") && (
        <p role="status">Welcome! We sent a code to your address. Enter it here to get order e-mails, or <Link to="/" className="link">start shopping</Link>.</p>
      )}
      <Field id="code" label="Code from the e-mail" value={code} onChange={setCode} autoComplete="one-time-code" />
    </AccountForm>
  );
}

/** Asks for a password reset e-mail (202 with no body, whether an account has the address or not). */
export function ForgotPasswordPage() {
  const [email, setEmail] = useState("");
  const [asked, setAsked] = useState(false);
  if (asked) {
    return (
      <Outcome title="Check your e-mail">
        If an account has the address {email}, we sent it a link to choose a new password. It works for a short while only.
      </Outcome>
    );
  }
  return (
    <AccountForm title="Forgot your password?" submitLabel="Send me a link" action={async () => { await send("/auth/password-reset", { method: "POST", body: { email } }); setAsked(true); }}>
      <Field id="email" label="E-mail" type="email" value={email} onChange={setEmail} autoComplete="email" />
    </AccountForm>
  );
}

export function ResetPasswordPage() {
  const [params] = useSearchParams();
  const [code, setCode] = useState(params.get("token") ?? "");
  const [password, setPassword] = useState("");
  const [done, setDone] = useState(false);
  if (done) {
    return (
      <Outcome title="Password changed">
        Every login of the account has ended. <Link to="/login" className="link">Log in</Link> with the new password.
      </Outcome>
    );
  }
  return (
    <AccountForm title="Choose a new password" submitLabel="Change password" action={async () => { await call<void>("/auth/password-reset/confirm", { method: "POST", body: { token: code.trim(), new_password: password } }); setDone(true); }}>
      <Field id="code" label="Code from the e-mail" value={code} onChange={setCode} autoComplete="one-time-code" />
      <Field id="new-password" label="New password" type="password" value={password} onChange={setPassword} autoComplete="new-password" help="At least 10 characters and hard to guess; not your name or e-mail." />
    </AccountForm>
  );
}
