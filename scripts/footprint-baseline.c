/* The floor under Ferry's footprint figures: the smallest WebKitGTK window there is (GTK 3 and
 * webkit2gtk-4.1, the libraries Tauri's Linux webview uses), set up as Ferry's is (document-viewer
 * cache model; scripts/footprint.sh also turns the DMABUF renderer off, as Ferry's main does),
 * showing a one-line page. Prints "ready" once the page has loaded. Built and measured by
 * scripts/footprint.sh; not part of the app. */
#include <gtk/gtk.h>
#include <stdio.h>
#include <webkit2/webkit2.h>

static void on_load(WebKitWebView *view, WebKitLoadEvent event, gpointer data) {
  (void)view;
  (void)data;
  if (event == WEBKIT_LOAD_FINISHED) {
    printf("ready\n");
    fflush(stdout);
  }
}

int main(int argc, char **argv) {
  gtk_init(&argc, &argv);
  GtkWidget *window = gtk_window_new(GTK_WINDOW_TOPLEVEL);
  gtk_window_set_default_size(GTK_WINDOW(window), 900, 680);
  webkit_web_context_set_cache_model(webkit_web_context_get_default(),
                                     WEBKIT_CACHE_MODEL_DOCUMENT_VIEWER);
  GtkWidget *view = webkit_web_view_new();
  gtk_container_add(GTK_CONTAINER(window), view);
  g_signal_connect(view, "load-changed", G_CALLBACK(on_load), NULL);
  g_signal_connect(window, "destroy", G_CALLBACK(gtk_main_quit), NULL);
  webkit_web_view_load_html(WEBKIT_WEB_VIEW(view),
                            "<!doctype html><html><body><p>Hello</p></body></html>", NULL);
  gtk_widget_show_all(window);
  gtk_main();
  return 0;
}
