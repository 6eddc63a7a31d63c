"""Reading the Maildirs a real mail server under test wrote (Postfix's
virtual(8), Dovecot's LMTP): a mixin for a class that knows where a user's
Maildir is (maildir(user)) and how to describe itself when a wait fails
(describe()). Servers like these give no delivery event, so waiting is
bounded polling of the folder."""
import email
import email.policy
import time


class MaildirReader:
    def message_files(self, user):
        """The files of the user's new/ and cur/, oldest first."""
        files = []
        for sub in ("new", "cur"):
            folder = self.maildir(user) / sub
            if folder.is_dir():
                files += [p for p in folder.iterdir() if p.is_file()]
        return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name))

    def messages(self, user):
        """The user's messages as bytes, oldest first."""
        return [p.read_bytes() for p in self.message_files(user)]

    def wait_for_messages(self, user, n=1, timeout=30):
        """Waits until the user's Maildir holds n messages; returns them as
        email.message.EmailMessage objects (raw bytes: messages())."""
        deadline = time.monotonic() + timeout
        while True:
            files = self.message_files(user)
            if len(files) >= n:
                return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in files]
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{len(files)} of {n} message(s) for {user} after {timeout}s\n"
                                   + self.describe())
            time.sleep(0.05)
