"""The main window of ODT Studio and :func:`run_gui`, the desktop application's entry point.

Four tabs follow the workflow: Acquisition import → Screening review → Reconstruction →
Birefringence viewer. All engine work
goes through one :class:`app.jobs.JobRunner`; the status bar shows the compute device and
the running job with a progress bar and a cancel button.
"""

from __future__ import annotations

import logging
import os
import platform
import signal
import sys
from pathlib import Path
from typing import Any, Optional

from PySide6.QtCore import QCoreApplication, QEvent, QSize, Qt, QTimer, QUrl, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QTabWidget,
    QWidget,
)

import engine
from engine.backend import device_description
from engine.store.birefringence import has_birefringence
from engine.store.project import DB_NAME, Project

from . import demo as demo_module
from . import logs, paths
from .errors import format_exception, install_excepthook, show_error
from .file_open import FileOpenFilter
from .jobs import Job, JobRunner
from .settings import APPLICATION, ORGANISATION, AppSettings
from .settings import reset_settings as _reset_settings
from .tabs.import_tab import ImportTab
from .tabs.birefringence_tab import BirefringenceTab
from .tabs.reconstruction_tab import ReconstructionTab
from .tabs.screening_tab import ScreeningTab
from .theme import apply_theme
from .widgets.job_status import JobStatusWidget
from .widgets.key_table import key_table_dialog

__all__ = ["TAB_TITLES", "MainWindow", "create_application", "run_gui"]

log = logging.getLogger(__name__)

TAB_TITLES = ("Acquisition import", "Screening review", "Reconstruction", "Birefringence viewer")
DEFAULT_SIZE = QSize(1280, 800)


def _app_icon() -> QIcon:
    icon = QIcon()
    for name in ("odt-studio.svg", "odt-studio.png"):
        p = paths.icon_path(name)
        if p is not None:
            icon.addFile(str(p))
    return icon


def _keys(standard: QKeySequence.StandardKey, fallback: str) -> list[QKeySequence]:
    """The platform's key bindings for ``standard``, or ``fallback`` where it defines none."""
    keys = QKeySequence.keyBindings(standard)
    return keys if keys else [QKeySequence(fallback)]


def install_gui_thread_gc(app: QApplication) -> None:
    """Collect cyclic garbage only in the GUI thread (idempotent).

    Python's cyclic garbage collector runs in whichever thread happens to allocate when a
    threshold is crossed. If that is a job's worker thread and the garbage holds Qt widgets,
    Qt destroys them off the GUI thread and the process can deadlock (seen in this project:
    a worker importing torch triggered a collection of an old QMenu). pyqtgraph's
    ``GarbageCollector`` turns automatic collection off and collects on a GUI-thread timer.
    """
    if getattr(app, "_odt_gc", None) is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        app._odt_gc = GarbageCollector(interval=0.5)  # type: ignore[attr-defined]


def demo_project_dir() -> Path:
    """Where the demo project is built on first launch and reused: ``<user data>/demo-project``."""
    return paths.user_data_dir() / "demo-project"


def _demo_builder() -> Any:
    """:func:`engine.pipeline.demo_project.ensure_demo_project` (tests swap in a tiny build)."""
    from engine.pipeline.demo_project import ensure_demo_project

    return ensure_demo_project


class MainWindow(QMainWindow):
    """ODT Studio's main window.

    Parameters
    ----------
    settings : AppSettings, optional
        Where to remember layout and projects (default: the user's settings).
    restore_layout : bool
        Restore the saved window geometry (tests pass False for a fixed size).

    Constructing it has no side effect beyond widgets: no file dialogs, no jobs, no
    network. :func:`run_gui` starts the demo and opens projects.
    """

    project_changed = Signal(object)  # Path or None
    demo_ready = Signal(object)  # engine.pipeline.demo_project.DemoProject, every tab given its part

    def __init__(self, settings: Optional[AppSettings] = None, restore_layout: bool = True,
                 parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.settings = settings if settings is not None else AppSettings()
        self.runner = JobRunner(self, dialog_parent=lambda: self)
        self.project_path: Optional[Path] = None
        self.project: Any = None
        self.device_text = device_description()
        self.setWindowIcon(_app_icon())
        self._build_tabs()
        self._build_menus()
        self._build_status_bar()
        self._update_title()
        self.resize(DEFAULT_SIZE)
        self.setMinimumSize(760, 520)
        if restore_layout:
            self.settings.restore_window(self)
        self._closing = False

    # ---------------------------------------------------------------- construction
    def _build_tabs(self) -> None:
        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("mainTabs")
        self.tabs.setDocumentMode(False)
        self.import_tab = ImportTab(self.runner, self.settings, self)
        self.screening_tab = ScreeningTab(self.runner, self.settings, self)
        self.reconstruction_tab = ReconstructionTab(self.runner, self.settings, self)
        self.birefringence_tab = BirefringenceTab(self.runner, self.settings, self)
        for widget, title in zip((self.import_tab, self.screening_tab, self.reconstruction_tab,
                                  self.birefringence_tab), TAB_TITLES):
            self.tabs.addTab(widget, title)
        self.project_changed.connect(self._project_to_tabs)
        self.import_tab.imported.connect(self._measurements_imported)
        # a new side-band setting: the review shows its measurement again (re-retrieved if needed)
        self.import_tab.sideband_changed.connect(self.screening_tab.sideband_setting_changed)
        self.setCentralWidget(self.tabs)

    def _build_menus(self) -> None:
        mb = self.menuBar()
        self.file_menu = mb.addMenu("&File")
        self.act_new_project = QAction("&New project…", self)
        self.act_new_project.setShortcuts(_keys(QKeySequence.StandardKey.New, "Ctrl+N"))
        self.act_new_project.setStatusTip("Choose an empty folder for a new project")
        self.act_new_project.triggered.connect(self.new_project_dialog)
        self.act_open_project = QAction("&Open project…", self)
        self.act_open_project.setShortcuts(_keys(QKeySequence.StandardKey.Open, "Ctrl+O"))
        self.act_open_project.setStatusTip("Open a project folder")
        self.act_open_project.triggered.connect(self.open_project_dialog)
        self.recent_menu = QMenu("Open &Recent", self)
        self.recent_menu.setObjectName("recentMenu")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self.act_demo = QAction("Open the &demo project", self)
        self.act_demo.setStatusTip("Open the built-in demo project: simulated measurements, screened and "
                                   "reconstructed (built once, then reused)")
        self.act_demo.triggered.connect(lambda: self.start_demo())
        self.act_quit = QAction("&Quit", self)
        self.act_quit.setShortcuts(_keys(QKeySequence.StandardKey.Quit, "Ctrl+Q"))
        self.act_quit.setMenuRole(QAction.MenuRole.QuitRole)
        self.act_quit.triggered.connect(self.close)
        self.file_menu.addAction(self.act_new_project)
        self.file_menu.addAction(self.act_open_project)
        self.file_menu.addMenu(self.recent_menu)
        self.file_menu.addSeparator()
        self.file_menu.addAction(self.act_demo)
        self.file_menu.addSeparator()
        self.file_menu.addAction(self.act_quit)
        self._fill_recent_menu()

        # Ctrl+1..4 switch tabs (not in a menu; listed in the shortcuts dialog)
        self.tab_actions: list[QAction] = []
        for i, title in enumerate(TAB_TITLES):
            act = QAction(f"Show {title}", self)
            act.setShortcut(QKeySequence(f"Ctrl+{i + 1}"))
            act.triggered.connect(lambda _=False, i=i: self.tabs.setCurrentIndex(i))
            self.addAction(act)
            self.tab_actions.append(act)

        self.help_menu = mb.addMenu("&Help")
        self.act_shortcuts = QAction("&Keyboard shortcuts", self)
        self.act_shortcuts.setShortcut(QKeySequence("F1"))
        self.act_shortcuts.triggered.connect(self.show_shortcuts)
        self.act_open_logs = QAction("Open &log folder", self)
        self.act_open_logs.triggered.connect(self.open_log_folder)
        self.act_about = QAction("&About ODT Studio", self)
        self.act_about.setMenuRole(QAction.MenuRole.AboutRole)
        self.act_about.triggered.connect(self.show_about)
        self.help_menu.addAction(self.act_shortcuts)
        self.help_menu.addAction(self.act_open_logs)
        self.help_menu.addSeparator()
        self.help_menu.addAction(self.act_about)

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        sb.setObjectName("statusBar")
        sb.setSizeGripEnabled(True)
        self.job_status = JobStatusWidget(self.runner, self)
        self.project_label = QLabel(self)
        self.project_label.setObjectName("projectLabel")
        self.device_label = QLabel(f"Compute: {self.device_text}", self)
        self.device_label.setObjectName("deviceLabel")
        self.device_label.setToolTip("Device the engine computes on (CUDA GPU when available, else CPU)")
        sb.addPermanentWidget(self.job_status)
        sb.addPermanentWidget(self.project_label)
        sb.addPermanentWidget(self.device_label)
        self.runner.job_finished.connect(
            lambda job, _r: sb.showMessage(f"{job.name}: done in {job.seconds:.1f} s", 5000)
            if (job.seconds or 0.0) >= 1.0 else None)
        self.runner.job_cancelled.connect(lambda job: sb.showMessage(f"{job.name}: cancelled", 5000))
        self.runner.job_failed.connect(lambda job, _e: sb.showMessage(f"{job.name}: failed", 8000))
        self._update_project_label()

    # ---------------------------------------------------------------- projects
    def _update_title(self) -> None:
        self.setWindowTitle(f"{self.project_path.name} — ODT Studio" if self.project_path else "ODT Studio")

    def _update_project_label(self) -> None:
        if self.project_path:
            self.project_label.setText(f"Project: {self.project_path.name}")
            self.project_label.setToolTip(str(self.project_path))
        else:
            self.project_label.setText("No project")
            self.project_label.setToolTip("File ▸ New project… or Open project… to keep your work")

    def open_project(self, path: str | Path, create: bool = False) -> bool:
        """Make the folder ``path`` the current project; True on success.

        The project database (:class:`engine.store.project.Project`) is created (``create=True``;
        a folder that already holds one is simply opened) or opened. Errors are shown in a dialog
        and logged.
        """
        path = Path(path).expanduser().resolve()
        try:
            if create:
                path.mkdir(parents=True, exist_ok=True)
            elif not path.is_dir():
                raise FileNotFoundError(f"the project folder '{path}' does not exist")
            if create and (path / DB_NAME).exists():
                create = False  # "new project" on an existing project simply opens it
            project = Project.create(path) if create else Project.open(path)
        except Exception as exc:
            log.exception("could not %s project %s", "create" if create else "open", path)
            hint = "" if create else "\n\nTo make this folder a project, use File ▸ New project…"
            show_error(self, "Project not opened",
                       f"Could not {'create' if create else 'open'} the project '{path}':\n{exc}{hint}",
                       format_exception(exc))
            return False
        self._close_project()
        self.project, self.project_path = project, path
        self.settings.add_recent_project(path)
        self._fill_recent_menu()
        self._update_title()
        self._update_project_label()
        self.statusBar().showMessage(f"Project {path.name} {'created' if create else 'opened'}", 5000)
        log.info("project %s: %s", "created" if create else "opened", path)
        self.project_changed.emit(path)
        return True

    @Slot(object)
    def _project_to_tabs(self, _path: object) -> None:
        """Give the open project (or None) to every tab that works on one."""
        for tab in (self.import_tab, self.screening_tab, self.reconstruction_tab):
            try:
                tab.set_project(self.project)
            except Exception:  # noqa: BLE001 - one tab's failure must not stop the others
                log.exception("%s could not take the project", type(tab).__name__)

    @Slot(list)
    def _measurements_imported(self, _outcomes: list) -> None:
        self.screening_tab.refresh_measurements()
        try:
            self.reconstruction_tab.set_project(self.project)
        except Exception:  # noqa: BLE001 - the other tabs go on
            log.exception("the reconstruction tab could not refresh its measurements")

    def _close_project(self) -> None:
        if self.project is not None:
            try:
                self.project.close()
            except Exception:
                log.exception("closing the project failed")
        self.project = None

    @Slot()
    def new_project_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self, "New project: choose or create an empty folder", str(Path.home()))
        if path:
            self.open_project(path, create=True)

    @Slot()
    def open_project_dialog(self) -> None:
        start = self.settings.last_project or str(Path.home())
        path = QFileDialog.getExistingDirectory(self, "Open project folder", start)
        if path:
            self.open_project(path)

    @Slot()
    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent_projects()
        for i, p in enumerate(recent):
            act = self.recent_menu.addAction(f"&{i + 1 if i < 9 else 0}  {Path(p).name}  —  {p}")
            act.setData(p)
            act.triggered.connect(lambda _=False, p=p: self._open_recent(p))
        if not recent:
            none = self.recent_menu.addAction("No recent projects")
            none.setEnabled(False)
        self.recent_menu.addSeparator()
        clear = self.recent_menu.addAction("Clear list")
        clear.setEnabled(bool(recent))
        clear.triggered.connect(self._clear_recent)

    def _open_recent(self, path: str) -> None:
        if not Path(path).is_dir():
            self.settings.remove_recent_project(path)
            self._fill_recent_menu()
            show_error(self, "Project not found", f"The project folder '{path}' no longer exists; "
                                                  "it was removed from the recent list.")
            return
        self.open_project(path)

    def _clear_recent(self) -> None:
        self.settings.clear_recent_projects()
        self._fill_recent_menu()

    # ---------------------------------------------------------------- demo and paths
    def start_demo(self, force: bool = False) -> Optional[Job]:
        """Open the demo project, building it first if needed (a background job with progress).

        The demo project (:mod:`engine.pipeline.demo_project`: bacteria, cells, a bead and a
        liquid-crystal droplet, imported, screened with two overrides, reconstructed, the droplet's
        birefringence computed) lives in the user's data folder, is built once and then reused.
        When it is ready every tab shows it (:meth:`show_demo_project`) and :attr:`demo_ready` fires.
        """
        if not demo_module.demo_available():
            msg = "The demo simulator is not part of this build, so there is no demo project."
            log.warning(msg)
            self.statusBar().showMessage(msg, 10000)
            return None
        out = demo_project_dir()
        self.tabs.setCurrentWidget(self.import_tab)

        def stopped(*_args: object) -> None:
            if self.import_tab.root is None:
                self.import_tab.show_empty_message()

        if self.import_tab.root is None:
            self.import_tab.show_empty_message(
                "Preparing the demo project…",
                "Bacteria, adherent cells, a silica bead and a liquid-crystal droplet are being "
                "simulated (holograms under many illumination angles, by multi-slice beam propagation), "
                "imported, screened and reconstructed.<br>This happens once (about a minute); "
                "the progress is in the status bar below.")
        return self.runner.submit("Preparing the demo project", _demo_builder(), out, force=force,
                                  on_result=self.show_demo_project, on_cancelled=stopped, on_error=stopped)

    def show_demo_project(self, demo: Any) -> None:
        """Open a built demo project (:class:`engine.pipeline.demo_project.DemoProject`) in every tab."""
        self.settings.first_run_done = True
        if not self.open_project(demo.project_path):
            return
        first = demo.measurement("bacteria") or next(iter(demo.measurements.values()), None)
        self.import_tab.set_root(demo.measurements_dir, select=Path(first["folder"]) if first else None)
        if first is not None:
            self.screening_tab.select_measurement(int(first["id"]))
            self.reconstruction_tab.show_measurement(Path(first["folder"]))
        droplet = demo.measurement("lc-droplets")
        if droplet is not None:
            self.birefringence_tab.open_result(Path(droplet["result"]))
        self.statusBar().showMessage(
            f"Demo project ready: {len(demo.measurements)} measurements, screened, reviewed and reconstructed"
            + (f" (built in {demo.seconds:.0f} s)" if demo.built else ""), 10000)
        self.demo_ready.emit(demo)

    def open_path(self, path: str | Path) -> None:
        """Open what the command line or the desktop gave: a measurement folder (or a folder of them)."""
        p = Path(path).expanduser()
        if p.is_dir():
            self.tabs.setCurrentWidget(self.import_tab)
            self.import_tab.set_root(p)
        elif p.is_file() and (p.name.endswith(".odt.h5") or p.suffix.lower() == ".tcf"):
            self.tabs.setCurrentWidget(self.reconstruction_tab)
            self.reconstruction_tab.open_result(p)
            if has_birefringence(p):
                self.birefringence_tab.open_result(p)
                self.tabs.setCurrentWidget(self.birefringence_tab)
        elif p.is_file() and p.parent.is_dir():
            self.tabs.setCurrentWidget(self.import_tab)
            self.import_tab.set_root(p.parent)
        else:
            show_error(self, "Cannot open", f"'{p}' does not exist.")

    # ---------------------------------------------------------------- help
    def shortcut_list(self) -> list[tuple[str, str]]:
        """(action, shortcut) pairs of every action that has a keyboard shortcut."""
        out = []
        actions = [a for m in (self.file_menu, self.help_menu) for a in m.actions()] + self.tab_actions
        for a in actions:
            if a.isSeparator() or a.shortcut().isEmpty():
                continue
            out.append((a.text().replace("&", "").rstrip("…").rstrip(),
                        a.shortcut().toString(QKeySequence.SequenceFormat.NativeText)))
        return out

    @Slot()
    def show_shortcuts(self) -> QDialog:
        return key_table_dialog(self, "Keyboard shortcuts", self.shortcut_list(), ("Action", "Shortcut"),
                                "shortcutsDialog", stretch_column=0)

    def about_text(self) -> str:
        """The About box's text: version, compute device, library versions, where files go."""
        import PySide6
        import torch

        log_file = logs.current_log_file()
        return (
            f"<h3>ODT Studio {engine.__version__}</h3>"
            "<p>Optical diffraction tomography workstation: hologram import, learned field "
            "screening, 3-D refractive-index and birefringence reconstruction.</p>"
            f"<p><b>Compute device:</b> {self.device_text}</p>"
            f"<p>Python {platform.python_version()} · Qt {PySide6.__version__} · "
            f"PyTorch {torch.__version__}</p>"
            f"<p><b>Log file:</b> {log_file if log_file else 'not logging to a file'}<br>"
            f"<b>Settings:</b> {self.settings.file_name}</p>")

    @Slot()
    def show_about(self) -> QMessageBox:
        box = QMessageBox(self)
        box.setObjectName("aboutDialog")
        box.setWindowTitle("About ODT Studio")
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setText(self.about_text())
        icon = _app_icon()
        if not icon.isNull():
            box.setIconPixmap(icon.pixmap(72, 72))
        box.setStandardButtons(QMessageBox.StandardButton.Close)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        box.open()
        return box

    @Slot()
    def open_log_folder(self) -> None:
        folder = logs.current_log_file().parent if logs.current_log_file() else paths.user_log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    # ---------------------------------------------------------------- closing
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        if not self._closing:
            self._closing = True
            self.settings.save_window(self)
            if self.runner.busy:
                self.statusBar().showMessage("Stopping the running job…")
            if not self.runner.shutdown(timeout_s=10.0):
                log.warning("quitting while a job still runs")
            self._close_project()
            self.birefringence_tab.shutdown()  # releases the VTK OpenGL context
            forget_plot_views()
            log.info("main window closed")
        super().closeEvent(event)


def forget_plot_views() -> None:
    """Empty pyqtgraph's global registry of plot views (called when the main window closes).

    Every ``pg.ImageView`` registers its views under a name; when one is destroyed, pyqtgraph
    refreshes the axis-link menus of *all* registered views, including those whose menus Qt has
    already deleted, and raises in a Qt slot. ODT Studio links views itself and never uses those
    menus, and nothing is linked once the window is closed.
    """
    import pyqtgraph as pg

    pg.ViewBox.AllViews.clear()
    pg.ViewBox.NamedViews.clear()


def create_application(argv: Optional[list[str]] = None) -> QApplication:
    """The QApplication (created once): Fusion style, dark palette, names, icon."""
    app = QApplication.instance()
    if app is None:
        QApplication.setApplicationName(APPLICATION)
        QApplication.setOrganizationName(ORGANISATION)
        app = QApplication(argv if argv is not None else [sys.argv[0]])
    app.setApplicationName(APPLICATION)
    app.setOrganizationName(ORGANISATION)
    app.setApplicationDisplayName("ODT Studio")
    app.setApplicationVersion(engine.__version__)
    app.setDesktopFileName("odt-studio")
    apply_theme(app)  # type: ignore[arg-type]
    install_gui_thread_gc(app)
    if file_open_filter(app) is None:  # macOS hands documents over as QEvent.FileOpen
        f = FileOpenFilter(app)
        f.setObjectName("fileOpenFilter")
        app.installEventFilter(f)
    icon = _app_icon()
    if not icon.isNull():
        app.setWindowIcon(icon)  # type: ignore[union-attr]
    return app  # type: ignore[return-value]


def file_open_filter(app: QApplication) -> FileOpenFilter | None:
    """The application's :class:`~app.file_open.FileOpenFilter` (installed by :func:`create_application`)."""
    return app.findChild(FileOpenFilter, "fileOpenFilter")


def run_gui(project: str | None = None, open_path: str | None = None,
            reset_settings: bool = False, demo: bool = False) -> int:
    """Start the desktop application and run its event loop; returns the exit code.

    Parameters
    ----------
    project : str, optional
        Project folder to open (default: the last one, if it still exists).
    open_path : str, optional
        A measurement folder (or a folder of them) to show in the import tab.
    reset_settings : bool
        Forget saved settings (window layout, recent projects...) first.
    demo : bool
        Open the built-in demo project (it is also opened on first launch).
    """
    app = create_application()
    log_file = logs.setup_logging()
    logs.install_qt_message_handler()
    if reset_settings:
        log.info("settings reset: %s", _reset_settings())
    settings = AppSettings()
    try:
        window = MainWindow(settings=settings)
    except Exception as exc:  # the window itself could not be built: say why, then give up
        log.exception("the main window could not be created")
        box = QMessageBox(QMessageBox.Icon.Critical, "ODT Studio cannot start",
                          f"The main window could not be created:\n{type(exc).__name__}: {exc}\n\n"
                          f"The details are in the log file {log_file}.")
        box.setDetailedText(format_exception(exc))
        if QApplication.platformName() != "offscreen":  # nobody could close it offscreen
            box.exec()
        print(box.text(), file=sys.stderr)
        return 1
    install_excepthook(lambda: window)
    log.info("compute device: %s; log file %s", window.device_text, log_file)

    # Ctrl+C in the terminal quits cleanly: Python signal handlers need the interpreter to
    # run now and then, which a do-nothing timer provides.
    signal.signal(signal.SIGINT, lambda *_: window.close())
    tick = QTimer(window)
    tick.timeout.connect(lambda: None)
    tick.start(250)

    first_run = not settings.first_run_done
    window.show()
    if project:
        window.open_project(project)
    elif settings.last_project and Path(settings.last_project).is_dir():
        window.open_project(settings.last_project)
    opener = file_open_filter(app)
    desktop_paths = bool(opener and opener.pending)  # documents macOS sent at launch
    if opener is not None:
        opener.set_handler(window.open_path)
    if open_path:
        window.open_path(open_path)
    elif desktop_paths:
        pass  # set_handler has just opened them: no demo, no last import folder over them
    elif demo or first_run:
        window.start_demo()
    elif settings.import_root and Path(settings.import_root).is_dir():
        window.import_tab.set_root(settings.import_root)
    code = app.exec()
    # a Quit request still queued (e.g. the last window closed while the loop ended) must not
    # reach a later event loop of this process (tests run run_gui inside a longer session):
    # delivered there, it would make every later QEventLoop return at once
    QCoreApplication.removePostedEvents(None, QEvent.Type.Quit)
    if opener is not None:
        opener.set_handler(None)  # the window is gone
    log.info("event loop ended (exit code %s)", code)
    if window.runner.has_live_threads():
        # a job ignored cancel: Python cannot stop its thread, and letting the interpreter
        # destroy a running QThread aborts the process; leave at once instead
        log.warning("a background job is still running at exit; leaving without waiting for it")
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(code))
    return int(code)
