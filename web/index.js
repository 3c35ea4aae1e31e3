// The home page: each button opens its page for the stream typed in.
const form = document.getElementById('open');
form.addEventListener('submit', (event) => {
  event.preventDefault();
  const page = event.submitter?.dataset.page ?? 'watch';
  const stream = document.getElementById('stream').value.trim();
  location.href = `/${page}/${encodeURIComponent(stream)}`;
});
