; Inno Setup 6 script: Windows installer of ODT Studio over the PyInstaller one-folder bundle.
;
; Build on Windows (cannot be built on the Linux build machine):
;   1. .venv\Scripts\python -m PyInstaller --noconfirm --clean --distpath dist ^
;         --workpath build\pyinstaller packaging\odt-studio.spec
;      -> dist\odt-studio\odt-studio.exe (windowed) and odt-studio-cli.exe (console)
;   2. "C:\Program Files (x86)\Inno Setup 6\ISCC.exe" /DAppVersion=0.1.0 packaging\windows\odt-studio.iss
;      -> dist\odt-studio-0.1.0-setup.exe
;
; Installs per machine in {autopf}\ODT Studio (or per user without admin rights), adds a
; Start-menu shortcut, associates *.odt.h5 result files with ODT Studio, and uninstalls
; everything it wrote (files, shortcut, registry keys). User data, logs and settings stay in
; %LOCALAPPDATA%\odt-studio (platformdirs) and are not touched.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define AppName "ODT Studio"
#define AppExe "odt-studio.exe"
#define ProgId "ODTStudio.Result"
#define BundleDir "..\..\dist\odt-studio"

[Setup]
AppId={{7B3E8C52-4F0A-4C55-9E0B-0D7D2B1A6F21}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher=ODT Studio developers
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=admin
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist
OutputBaseFilename=odt-studio-{#AppVersion}-setup
SetupIconFile=odt-studio.ico
UninstallDisplayIcon={app}\{#AppExe}
Compression=lzma2/fast
SolidCompression=no
WizardStyle=modern
ChangesAssociations=yes

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "associate"; Description: "Open ODT Studio result files (*.odt.h5) with ODT Studio"; GroupDescription: "File association:"
Name: "associate\h5"; Description: "Also make ODT Studio the default program for all *.h5 files"; GroupDescription: "File association:"; Flags: unchecked

[Files]
Source: "{#BundleDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\ODT Studio"; Filename: "{app}\{#AppExe}"; WorkingDir: "{userdocs}"
Name: "{group}\Uninstall ODT Studio"; Filename: "{uninstallexe}"
Name: "{autodesktop}\ODT Studio"; Filename: "{app}\{#AppExe}"; WorkingDir: "{userdocs}"; Tasks: desktopicon

[Registry]
; Explorer picks the handler by the LAST extension only (".h5"). So: ".odt.h5" is registered for
; shells and dialogs that honour multi-dot extensions; ".h5\OpenWithProgids" lists ODT Studio in
; "Open with" without taking plain HDF5 files away from other programs; the optional task
; "associate\h5" (a sub-task) makes ODT Studio the default for every .h5 (for PCs that only hold ODT results).
Root: HKA; Subkey: "Software\Classes\.odt.h5"; ValueType: string; ValueName: ""; ValueData: "{#ProgId}"; Flags: uninsdeletevalue; Tasks: associate
Root: HKA; Subkey: "Software\Classes\.odt.h5"; ValueType: string; ValueName: "Content Type"; ValueData: "application/x-odt-result"; Flags: uninsdeletevalue; Tasks: associate
Root: HKA; Subkey: "Software\Classes\.h5\OpenWithProgids"; ValueType: string; ValueName: "{#ProgId}"; ValueData: ""; Flags: uninsdeletevalue; Tasks: associate
Root: HKA; Subkey: "Software\Classes\{#ProgId}"; ValueType: string; ValueName: ""; ValueData: "ODT Studio result"; Flags: uninsdeletekey; Tasks: associate
Root: HKA; Subkey: "Software\Classes\{#ProgId}\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: "{app}\{#AppExe},0"; Tasks: associate
Root: HKA; Subkey: "Software\Classes\{#ProgId}\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\{#AppExe}"" ""%1"""; Tasks: associate
Root: HKA; Subkey: "Software\Classes\.h5"; ValueType: string; ValueName: ""; ValueData: "{#ProgId}"; Flags: uninsdeletevalue; Tasks: associate\h5
Root: HKA; Subkey: "Software\Classes\Applications\{#AppExe}\SupportedTypes"; ValueType: string; ValueName: ".odt.h5"; ValueData: ""; Flags: uninsdeletekey

[Run]
Filename: "{app}\odt-studio-cli.exe"; Parameters: "--self-test"; StatusMsg: "Checking the installation..."; Flags: runhidden waituntilterminated; Check: WizardSilent
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,ODT Studio}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; byte-code caches Python may write inside the install folder at run time
Type: filesandordirs; Name: "{app}\_internal\__pycache__"
Type: dirifempty; Name: "{app}"
