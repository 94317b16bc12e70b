/* inputs.h - the images a user names, in order: files, folders (walked
 * recursively, entries in byte order), tar / tar.gz / zip archives (read
 * in archive order without extracting), and tk-list lines
 * ("path<TAB>key<TAB>label<TAB>x0,y0,x1,y1", or a bare path) from a list
 * file or standard input ("-"). */
#ifndef TK_INPUTS_H
#define TK_INPUTS_H

#include <stddef.h>
#include <stdint.h>

struct tk_input {
	long index;	/* position among all inputs, from 0 */
	char *src;	/* path, or archive:member */
	char *path;	/* the file to read; NULL when data holds the bytes */
	uint8_t *data;	/* an archive member's bytes */
	size_t len;
	char *key;	/* from the list, else the file name without extension */
	long label;	/* -1: none */
	int has_bbox;
	double bbox[4];
	char *err;	/* this input is bad: why (src names it) */
};

struct tk_inputs;

/* The fields of one tk-list line: path<TAB>key<TAB>label<TAB>x0,y0,x1,y1.
 * Fields after the path may be empty or missing; later fields are
 * ignored. */
struct tk_list_line {
	const char *path;	/* never empty */
	const char *key;	/* keylen bytes: the key, or the path's stem */
	size_t keylen;
	long label;		/* -1: none */
	int has_bbox;
	double bbox[4];
};
/* Split line (without its newline) in place into l, whose strings point
 * into line.  NULL, or why the line is bad (allocated: free it). */
char *tk_list_line_parse(char *line, struct tk_list_line *l);

/* Keep only the images keep() accepts, called for each file, folder
 * entry and archive member (not list lines, nor an argument that does
 * not exist) with it->src and it->key set, before its bytes are read and before
 * the shard counts it: the shard counts the images kept.  keep may set
 * it->label and the bbox. */
void tk_inputs_filter(struct tk_inputs *in,
		      int (*keep)(void *ctx, struct tk_input *it), void *ctx);

/* Inputs named by args (nargs of them; none: the list on standard
 * input).  Only inputs whose index is shard modulo nshards are returned;
 * the others are passed over without being read. */
struct tk_inputs *tk_inputs_new(char **args, int nargs, int shard,
				int nshards);
/* Pass over the inputs of index below from (counted as the shard counts
 * them) without reading them, as inputs of other shards are. */
void tk_inputs_from(struct tk_inputs *in, long from);
/* The next input, 1; 0 at the end.  The caller owns it: tk_input_free. */
int tk_inputs_next(struct tk_inputs *in, struct tk_input *it);
void tk_inputs_free(struct tk_inputs *in);
/* Read it->path into it->data (when not already there).  0, or -1 with
 * the reason in err. */
int tk_input_read(struct tk_input *it, char *err, size_t errlen);
void tk_input_free(struct tk_input *it);

/* Whether a file name looks like an image we decode (.jpg, .jpeg, .png in
 * any case), and like an archive (.tar, .tar.gz, .tgz, .zip, ...). */
int tk_is_image_name(const char *name);
int tk_is_archive_name(const char *name);

#endif
