"""The site's routes, one module per group: sign-in, pages, the JSON API, a job's files, the API's own docs."""
