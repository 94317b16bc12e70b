/* trainlog.h - the training log: one JSON object per line, appended and
 * flushed as it goes, so that an interrupted run keeps its history and a
 * resumed one continues the same file; and its plot, loss and top-1/top-5
 * error against steps as an SVG drawing (the reference's
 * training_logger.png). */
#ifndef TK_TRAINLOG_H
#define TK_TRAINLOG_H

#include <stdio.h>

struct tk_trainlog {
	FILE *fp;
	char *path;
};

/* Open for appending; path NULL: no log (writes do nothing).  With
 * from >= 0, a training run that starts at step 'from': the records of
 * later steps (a run interrupted after its last checkpoint left them,
 * and this one trains those steps again) are moved to path.removed
 * first, and their number returned. */
long tk_trainlog_open(struct tk_trainlog *l, const char *path, long from);
/* Before a validation record of step: the log's earlier validation
 * records of that step (a checkpoint validated again) move to
 * path.removed; their number. */
long tk_trainlog_drop_val(struct tk_trainlog *l, long step);
/* One line: the formatted text must be a JSON object. */
void tk_trainlog_write(struct tk_trainlog *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void tk_trainlog_close(struct tk_trainlog *l);

/* Draw the log at log_path into svg_path (written atomically): training
 * records {"step", "loss", "top1", "top5"} as lines, validation records
 * {"val_loss", "val_top1", "val_top5", "step"} as marks.  Lines that are
 * not JSON objects are skipped.  Returns the number of points drawn, or
 * -1 with a message in err when the log cannot be read. */
int tk_train_plot(const char *svg_path, const char *log_path, char *err,
		  size_t errlen);

#endif
